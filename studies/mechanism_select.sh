#!/usr/bin/env bash
# Mechanism study, stage 1 (issue #18): choose SPHERE's strength ρ on sequence A.
# Plan, selection rule and decision tests: docs/results.md, "Mechanism study: plan".
#
# Sequence A: faucet-close → handle-press-side → push-wall (the earlier mechanism study's).
# Variants: SPHERE grad mode at ρ ∈ {1e-3, 1e-2, 1e-1}, and the unregularised Top-K MoE (shown,
# not used by the rule). Rule: the ρ with the highest mean r_e(K) on the run-wide probe at the end
# of the sequence; it is written to docs/studies/mechanism-select/chosen.json, which stage 2 reads.
#
# One command from a clean checkout (after `make install`); resumable: re-running skips finished
# runs and resumes interrupted ones, then re-analyses.
#   studies/mechanism_select.sh                       # 12 runs, ~20 min on 2 quiet cores
#   ADDRESS=HEAD:6379 studies/mechanism_select.sh     # on a Ray cluster
source "$(dirname "$0")/common.sh"
OUT=${OUT:-runs/studies/mechanism-select}
SEEDS=${SEEDS:-0-2}
STEPS=${STEPS:-32768}
TASKS=${TASKS:-faucet-close-v3,handle-press-side-v3,push-wall-v3}
RHOS=${RHOS:-1e-3,1e-2,1e-1}

common=(--tasks "$TASKS" --steps-per-task "$STEPS" --seeds "$SEEDS" --protocols crl
        --config "$CONFIG" "${where[@]}")
"$SPHERE" sweep --methods topk_moe "${common[@]}" --out "$OUT/topk_moe"
"$SPHERE" sweep --methods sphere "${common[@]}" --out "$OUT/sphere" \
    --vary sphere_mode=grad --vary "rho=$RHOS"
"$PYTHON" studies/analyse.py select "$OUT" --out "${RESULTS:-docs/studies/mechanism-select}"
