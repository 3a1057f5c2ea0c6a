#!/usr/bin/env bash
# Direction study (issue #13 §2): does SPHERE close the gap between continual (CRL) and
# single-task (RL) training that an unregularised Top-K MoE shows? Methods ppo, topk_moe,
# topk_moe_ln and sphere, protocols crl and rl, five seeds, reported with `sphere report`.
#
# The sequence is not the mechanism study's, and nothing here was tuned on it:
# - tasks: the three of twelve MetaWorld tasks that single-task Top-K MoE learned fastest in a
#   one-seed pilot (docs/results.md, "Choosing the sequence"), in alphabetical order;
# - SPHERE's mode and ρ (grad, 0.01): those the mechanism study found to keep r_e(K) highest on
#   its own sequence.
# The settings are the mechanism study's (studies/mechanism.json): the cw10 preset, rollouts of
# 8 envs × 1,024 steps, diagnostics every 8,192 steps on each task's probe and a run-wide one.
#
# Resumable: re-running the same command skips finished runs and resumes interrupted ones.
#   SEEDS=0-4 STEPS=32768 CPUS=2 studies/direction.sh      # what docs/results.md ran
source "$(dirname "$0")/common.sh"
OUT=${OUT:-runs/direction}
SEEDS=${SEEDS:-0-4}
STEPS=${STEPS:-32768}
TASKS=${TASKS:-door-close-v3,drawer-close-v3,handle-press-v3}
SPHERE_MODE=${SPHERE_MODE:-grad}
RHO=${RHO:-0.01}

common=(--tasks "$TASKS" --steps-per-task "$STEPS" --seeds "$SEEDS" --protocols crl,rl
        --config "$CONFIG" "${where[@]}")
"$SPHERE" sweep --methods ppo,topk_moe,topk_moe_ln "${common[@]}" --out "$OUT/baselines"
"$SPHERE" sweep --methods sphere "${common[@]}" --out "$OUT/sphere" \
    --vary "sphere_mode=$SPHERE_MODE" --vary "rho=$RHO"
"$SPHERE" report "$OUT" --out "${REPORT:-report/direction}"
