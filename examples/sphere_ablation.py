"""The SPHERE ablation's variants as methods of their own, for ``sphere sweep --plugin``.

``sphere_variant`` is a configuration key, so variants of ``--method sphere`` would share run
directory names and report labels; registered as methods, each gets its own runs in the same
``--out`` and its own row in ``sphere report`` (docs/reproduce.md, section 3):

    sphere sweep --plugin examples/sphere_ablation.py --benchmark hb5 --protocols crl \
        --methods topk_moe,sphere,sphere_all_layers,sphere_per_expert,sphere_gradient_factor \
        --seeds 0-4 --out runs/main
"""

import sphere_rl
from sphere_rl.regularizers.hooks import SphereRegularizer

ABLATION = {
    "all_layers": "SPHERE on every hidden expert layer (ablation)",
    "per_expert": "SPHERE per expert, summed: no cross-expert blocks (ablation)",
    "gradient_factor": "SPHERE on the gradient factor G instead of A (ablation)",
    "gate": "SPHERE on the routing matrix only (the release's gating variant)",
}

for variant, description in ABLATION.items():
    name = f"sphere_{variant}"

    def factory(cfg, variant=variant):
        return SphereRegularizer(
            variant=variant, mode=cfg.sphere_mode, coef=cfg.rho, pcgrad=cfg.pcgrad
        )

    sphere_rl.register_regularizer(name, factory, description, "SPHERE paper, ablation")
    sphere_rl.register_method(name, "topk_moe", name, description, "SPHERE paper, ablation")
