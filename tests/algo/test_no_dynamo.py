"""Training does not import torch._dynamo (about 70 MiB resident per process, with sympy).

torch.optim's optimisers import it on their first use; sphere_rl's Adam does not. Checked in a
fresh interpreter, since any earlier test in this process may have imported it already.
"""

import json
import subprocess
import sys

SCRIPT = """
import json, sys

import torch

from sphere_rl.algo.buffer import RolloutBuffer
from sphere_rl.config import build_config
from sphere_rl.methods import build_agent

loaded = lambda: {m: m in sys.modules for m in ("torch._dynamo", "sympy")}
report = {"before": loaded()}
# SPHERE (fused Adam, a regularizer) and CBP (foreach Adam, a callback that edits Adam's moments).
for method, kernel in [("sphere", "fused"), ("cbp", "foreach")]:
    cfg = build_config({"method": method, "preset": "hb5", "hidden": [16, 16], "n_experts": 4,
                        "update_epochs": 2, "minibatch_size": 16, "adam_kernel": kernel})
    agent = build_agent(cfg, 5, 2)
    buffer = RolloutBuffer.empty(16, 4, 5, 2, "cpu")
    buffer.obs.normal_()
    buffer.actions.normal_()
    buffer.log_probs.normal_(-2.0, 0.5)
    agent.update(buffer, torch.randn(16, 4), torch.randn(16, 4))
    assert agent.actor_optimizer.state  # the optimiser did step
    agent.load_state_dict(agent.state_dict())  # a checkpoint and a resume
    agent.start_task(reset_optimizer=True)
report["after"] = loaded()
print(json.dumps(report))
"""


def test_an_agent_update_does_not_import_torch_dynamo():
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=300
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["before"] == {"torch._dynamo": False, "sympy": False}  # a fresh interpreter
    assert report["after"] == {"torch._dynamo": False, "sympy": False}
