#!/usr/bin/env bash
# Mechanism study (issue #13 §1): does the routing-weighted expert feature Gram A and the eNTK K
# lose effective rank over a continual sequence without SPHERE, and does SPHERE keep them higher,
# more so with larger ρ? Every run logs r_e(K) and r_e(A) on each task's probe and on one probe
# batch fixed for the whole run (diag_fixed_probe), so curves are comparable across tasks.
#
# Resumable: re-running the same command skips finished runs and resumes interrupted ones.
# Sizes are environment variables so the same script serves a workstation and a cluster:
#   SEEDS=0-2 STEPS=32768 CPUS=2 studies/mechanism.sh        # what docs/results.md ran
#   ADDRESS=HEAD:6379 SEEDS=0-4 STEPS=1000000 studies/mechanism.sh     # a Ray cluster
source "$(dirname "$0")/common.sh"
OUT=${OUT:-runs/mechanism}
SEEDS=${SEEDS:-0-2}
STEPS=${STEPS:-32768}
# faucet-close and handle-press-side are the two tasks PPO learned fastest in isolation (about 80k
# steps, docs/benchmarks.md "Earlier demo settings"); push-wall is a third task with a parity-checked envpool
# port (all three run on the fast backend). The direction study must report on another sequence.
TASKS=${TASKS:-faucet-close-v3,handle-press-side-v3,push-wall-v3}

common=(--tasks "$TASKS" --steps-per-task "$STEPS" --seeds "$SEEDS" --protocols crl
        --config "$CONFIG" "${where[@]}")
# Unregularised Top-K MoE, then SPHERE in grad mode at three strengths and in the release's
# base-config loss mode (ρ = 0.05).
"$SPHERE" sweep --methods topk_moe "${common[@]}" --out "$OUT/topk_moe"
"$SPHERE" sweep --methods sphere "${common[@]}" --out "$OUT/sphere" \
    --vary sphere_mode=grad --vary rho=1e-3,1e-2,1e-1
"$SPHERE" sweep --methods sphere "${common[@]}" --out "$OUT/sphere" \
    --vary sphere_mode=loss --vary rho=0.05
"$SPHERE" mechanism "$OUT" --out "${REPORT:-report/mechanism}"
