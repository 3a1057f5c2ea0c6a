#!/usr/bin/env bash
# Choosing the direction study's sequence (issue #13 §2): single-task RL of the paper's Top-K MoE
# on MetaWorld tasks outside the mechanism study's sequence, one seed, evaluated every 8,192 steps
# (5 episodes). The direction study takes the tasks that reach ≥ 0.5 success fastest; the pilot
# measures only how fast a task is learned in isolation, never a method's effect.
# Ran in two rounds (docs/results.md): 24,576 steps for the first six tasks, 40,960 for the rest.
set -euo pipefail
cd "$(dirname "$0")/.."
SPHERE=${SPHERE:-.venv/bin/sphere}
OUT=${OUT:-runs/pilot}
CONFIG=$(mktemp)
trap 'rm -f "$CONFIG"' EXIT
cat > "$CONFIG" <<JSON
{"preset": "cw10", "env_backend": "auto", "num_steps": 1024, "eval_interval": 8192,
 "eval_episodes": 5, "diag_interval": 1000000, "diag_entk": false}
JSON
pilot() {  # steps, tasks...
  local steps=$1; shift
  for task in "$@"; do
    "$SPHERE" train --tasks "$task" --protocol rl --method topk_moe --config "$CONFIG" \
        --steps-per-task "$steps" --seed 0 --out "$OUT/$task" --quiet
  done
}
pilot 24576 drawer-close-v3 button-press-topdown-v3 window-close-v3 plate-slide-v3 \
    coffee-button-v3 reach-v3
pilot 40960 door-close-v3 handle-press-v3 faucet-open-v3 window-open-v3 button-press-v3 \
    reach-wall-v3
