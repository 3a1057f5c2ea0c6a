#!/usr/bin/env bash
# Mechanism study, stage 2 (issue #18): confirm on sequence B, which played no part in choosing ρ.
# Plan and decision tests: docs/results.md, "Mechanism study: plan".
#
# Sequence B: hammer → push-back → stick-pull, the first three CW10 tasks (in CW10 order) that are
# not in sequence A. Variants: the unregularised Top-K MoE and SPHERE (grad mode) at the ρ stage 1
# chose (docs/studies/mechanism-select/chosen.json), 10 seeds each.
#
# One command from a clean checkout (after `make install`); resumable.
#   studies/mechanism_confirm.sh                      # 20 runs, ~40 min on 2 quiet cores
source "$(dirname "$0")/common.sh"
OUT=${OUT:-runs/studies/mechanism-confirm}
SEEDS=${SEEDS:-0-9}
STEPS=${STEPS:-32768}
TASKS=${TASKS:-hammer-v3,push-back-v3,stick-pull-v3}
CHOSEN=${CHOSEN:-docs/studies/mechanism-select/chosen.json}
RHO=${RHO:-$("$PYTHON" -c "import json,sys; print(json.load(open(sys.argv[1]))['rho'])" "$CHOSEN")}

common=(--tasks "$TASKS" --steps-per-task "$STEPS" --seeds "$SEEDS" --protocols crl
        --config "$CONFIG" "${where[@]}")
"$SPHERE" sweep --methods topk_moe "${common[@]}" --out "$OUT/topk_moe"
"$SPHERE" sweep --methods sphere "${common[@]}" --out "$OUT/sphere" \
    --vary sphere_mode=grad --vary "rho=$RHO"
"$PYTHON" studies/analyse.py confirm "$OUT" --out "${RESULTS:-docs/studies/mechanism-confirm}"
