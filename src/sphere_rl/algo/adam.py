"""Adam on PyTorch's own kernels, without ``torch.optim``'s optimiser machinery.

``torch.optim.Optimizer`` imports ``torch._dynamo`` (and with it sympy) the first time an optimiser
is built or stepped: ``add_param_group``, ``zero_grad`` and ``load_state_dict`` are wrapped in
``torch._disable_dynamo``, ``step`` in ``_use_grad_for_differentiable``, and the private
``torch.optim.adam._fused_adam`` / ``_multi_tensor_adam`` in ``_disable_dynamo_if_unsupported``.
That is about 70 MiB resident in every training process for an import eager training never uses.

:class:`Adam` calls the same kernels directly: ``torch._fused_adam_`` (``kernel="fused"``) and the
``torch._foreach_*`` sequence of ``torch.optim.adam._multi_tensor_adam`` (``kernel="foreach"``), so
its numbers are bitwise those of ``torch.optim.Adam(..., fused=True)`` and ``(..., foreach=True)``
(``tests/algo/test_adam.py``). It keeps ``torch.optim.Adam``'s public surface that this package
uses — ``param_groups`` (the learning rate is set there), ``state`` (per parameter ``step``,
``exp_avg``, ``exp_avg_sq``), ``step``, ``zero_grad``, ``state_dict`` and ``load_state_dict`` in
``torch.optim.Adam``'s format, so checkpoints move between the two either way.

Only plain Adam is supported: no weight decay, AMSGrad, maximisation, capturable or differentiable
mode; a state dict asking for one of them is refused.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

KERNELS = ("foreach", "fused")

# torch.optim.Adam's options with the only values this class implements.
_PLAIN = {
    "weight_decay": 0,
    "amsgrad": False,
    "maximize": False,
    "capturable": False,
    "differentiable": False,
    "decoupled_weight_decay": False,
}


def _step_dtype(fused: bool) -> torch.dtype:
    """torch.optim's dtype for the step counter: float32 for the fused kernel, else float64 only
    when that is the default dtype."""
    if not fused and torch.get_default_dtype() == torch.float64:
        return torch.float64
    return torch.float32


class Adam:
    """Adam (Kingma & Ba 2015) for one group of parameters, stepped by PyTorch's kernels.

    Args:
        params: the parameters to optimise.
        lr: learning rate; change it later through ``param_groups[i]["lr"]``.
        betas: moment decay rates ``(β1, β2)``.
        eps: ε added to the denominator.
        kernel: ``"fused"`` (``torch._fused_adam_``, one in-place kernel) or ``"foreach"``
            (multi-tensor ``torch._foreach_*`` ops).

    After :meth:`load_state_dict`, each group steps with the kernel its loaded options name, as
    ``torch.optim.Adam`` does.
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        kernel: str = "fused",
    ) -> None:
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
        if not lr >= 0.0 or not eps >= 0.0 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"invalid Adam settings: lr={lr}, betas={betas}, eps={eps}")
        params = list(params)
        if not params:
            raise ValueError("Adam got an empty parameter list")
        fused = kernel == "fused"
        # torch.optim.Adam's group keys, in its order, so state dicts are interchangeable.
        self.defaults: dict[str, Any] = {
            "lr": lr,
            "betas": (float(betas[0]), float(betas[1])),
            "eps": eps,
            "weight_decay": 0,
            "amsgrad": False,
            "maximize": False,
            "foreach": None if fused else True,
            "capturable": False,
            "differentiable": False,
            "fused": True if fused else None,
            "decoupled_weight_decay": False,
        }
        self.param_groups: list[dict[str, Any]] = [{"params": params, **self.defaults}]
        self.state: defaultdict[Tensor, dict[str, Tensor]] = defaultdict(dict)

    def __repr__(self) -> str:
        group = self.param_groups[0]
        kernel = "fused" if group["fused"] else "foreach"
        return f"Adam(lr={group['lr']}, betas={group['betas']}, eps={group['eps']}, {kernel})"

    @torch.no_grad()
    def step(self) -> None:
        """One Adam step for every parameter with a gradient; the others are left untouched and
        get no state (as in ``torch.optim``)."""
        for group in self.param_groups:
            fused = bool(group["fused"])
            buckets: dict[tuple[torch.device, torch.dtype], tuple[list[Tensor], ...]] = {}
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse or p.is_complex():
                    raise RuntimeError("Adam supports dense real parameters only")
                state = self.state[p]
                if not state:
                    # The fused kernel reads the step from the parameter's device; foreach reads it
                    # on the host (as a Python float).
                    step_device = p.device if fused else torch.device("cpu")
                    state["step"] = torch.zeros((), dtype=_step_dtype(fused), device=step_device)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                # One multi-tensor call per device and dtype, as torch.optim groups them.
                lists = buckets.setdefault((p.device, p.dtype), ([], [], [], [], []))
                entry = (p, p.grad, state["exp_avg"], state["exp_avg_sq"], state["step"])
                for bucket, tensor in zip(lists, entry, strict=True):
                    bucket.append(tensor)
            for params, grads, exp_avgs, exp_avg_sqs, steps in buckets.values():
                update = _fused_update if fused else _foreach_update
                update(params, grads, exp_avgs, exp_avg_sqs, steps, group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop the gradients (``set_to_none``) or zero them in place."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    if p.grad.grad_fn is not None:
                        p.grad.detach_()
                    else:
                        p.grad.requires_grad_(False)
                    p.grad.zero_()

    def state_dict(self) -> dict[str, Any]:
        """``torch.optim.Adam``'s format: parameters become their position across the groups;
        the tensors are the live state, not copies."""
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            for p in group["params"]:
                index.setdefault(id(p), len(index))
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = [index[id(p)] for p in group["params"]]
            groups.append(packed)
        state = {index[id(p)]: s for p, s in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state written by :meth:`state_dict` or by ``torch.optim.Adam.state_dict``.

        Loaded groups replace the options (learning rate, kernel) as in ``torch.optim``. Moments
        move to their parameter's device and dtype; the step counter moves to the parameter's
        device as float32 for a fused group and is kept as saved otherwise.

        Raises:
            ValueError: the groups do not match this optimiser's in number or size, or a group
                asks for an Adam variant this class does not implement.
        """
        saved_groups = copy.deepcopy(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups) or any(
            len(s["params"]) != len(g["params"])
            for s, g in zip(saved_groups, self.param_groups, strict=True)
        ):
            raise ValueError("the state dict's parameter groups do not match this optimiser's")
        for saved in saved_groups:
            unsupported = {k: saved[k] for k, v in _PLAIN.items() if saved.get(k, v) != v}
            if unsupported:
                raise ValueError(f"this Adam does not implement {unsupported}")
        state: defaultdict[Tensor, dict[str, Tensor]] = defaultdict(dict)
        for saved, group in zip(saved_groups, self.param_groups, strict=True):
            fused = bool(saved.get("fused"))
            for i, p in zip(saved["params"], group["params"], strict=True):
                if i not in state_dict["state"]:
                    continue
                for key, value in state_dict["state"][i].items():
                    if key == "step":
                        value = value.to(dtype=torch.float32, device=p.device) if fused else value
                    elif p.is_floating_point():
                        value = value.to(dtype=p.dtype, device=p.device)
                    else:
                        value = value.to(device=p.device)
                    state[p][key] = value
            saved["params"] = group["params"]
        self.state = state
        self.param_groups = saved_groups


def _fused_update(params, grads, exp_avgs, exp_avg_sqs, steps, group) -> None:
    """``torch.optim.Adam(fused=True)``'s step: count, then one fused kernel."""
    beta1, beta2 = group["betas"]
    torch._foreach_add_(steps, 1)
    torch._fused_adam_(
        params, grads, exp_avgs, exp_avg_sqs, [], steps,
        lr=group["lr"], beta1=beta1, beta2=beta2, weight_decay=0.0, eps=group["eps"],
        amsgrad=False, maximize=False, grad_scale=None, found_inf=None,
    )  # fmt: skip


def _foreach_update(params, grads, exp_avgs, exp_avg_sqs, steps, group) -> None:
    """``torch.optim.Adam(foreach=True)``'s step, in its order of operations and roundings.

    With ``t`` the step and bias corrections ``c1 = 1 − β1^t``, ``c2 = 1 − β2^t`` taken in Python
    floats: ``m ← lerp(m, g, 1 − β1)``, ``v ← β2·v + (1 − β2)·g²``,
    ``θ ← θ − (lr / c1) · m / (√v / √c2 + ε)``.
    """
    beta1, beta2, lr = *group["betas"], group["lr"]
    torch._foreach_add_(steps, 1.0)
    torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2)
    counts = [step.item() for step in steps]
    step_sizes = [-(lr / (1 - beta1**t)) for t in counts]
    corrections = [(1 - beta2**t) ** 0.5 for t in counts]
    denominators = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_div_(denominators, corrections)
    torch._foreach_add_(denominators, group["eps"])
    torch._foreach_addcdiv_(params, exp_avgs, denominators, step_sizes)
