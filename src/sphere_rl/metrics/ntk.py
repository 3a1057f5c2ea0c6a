"""Exact empirical neural tangent kernel (eNTK) of a policy's action mean, without forming ``J``.

For ``N`` states and an ``A``-dimensional action mean ``f``, the eNTK is ``K = J Jᵀ`` with
``J = ∂ vec(f) / ∂θ`` over every parameter that affects the mean. Two conventions:

* **full** (default): ``K`` is ``(N·A, N·A)``, rows and columns ordered sample-major, so entry
  ``[(n, a), (m, b)]`` sits at ``[n·A + a, m·A + b]`` and equals ``⟨∂f_a(x_n)/∂θ, ∂f_b(x_m)/∂θ⟩``.
* **trace_outputs**: ``K_tr`` is ``(N, N)`` with ``K_tr[n, m] = Σ_a K[(n, a), (m, a)]``, the kernel
  of the output-summed inner product (cheaper by a factor ``A`` and what some papers plot).

Structured algorithm. ``K`` is a sum over parameters, so it splits into one term per layer. For a
linear layer ``y = x W + b`` seen by sample ``n`` with input ``x_n`` and output cotangent
``δ_n^a = ∂f_a(x_n)/∂y_n`` (a row vector),

    K_layer[(n, a), (m, b)] = (x_n · x_m + 1) · (δ_n^a · δ_m^b),

an input Gram times a cotangent Gram. A LayerNorm ``z = x̂ ⊙ γ + β`` gives
``Σ_j δ_n^a_j x̂_n,j δ_m^b_j x̂_m,j + δ_n^a · δ_m^b``: the Gram of the features ``[δ ⊙ x̂ | δ]``.
Because the policy treats states independently, all cotangents come from ``A`` backward passes of
``Σ_n f_a(x_n)`` (batched with ``is_grads_batched``): the gradient at ``y_n`` only sees sample
``n``. Autograd produces them, so top-k routing is handled exactly as training sees it (the gate
only receives gradient through the softmax over the selected logits).

Stacked experts (``ExpertLinear`` / ``ExpertLayerNorm``) contribute ``Σ_e`` of the same terms with
expert-specific inputs and cotangents. An expert with routing weight 0 on a state has a zero
cotangent there, so only the ``(expert, state)`` pairs with a non-zero cotangent are kept: they are
sorted by expert and packed into tiles of ``_TILE`` states, and the Grams are batched matrix
products over the pairs of tiles of the same expert (upper triangle only; ``K`` is symmetric). With
top-k routing that is about ``(k/E)²`` of the dense cost when the load is balanced, and never worse
than ``k/E`` however unbalanced.

Cost for widths ``w_l``: ``O(A)`` backward passes plus ``Σ_l (N A)² w_l`` for shared layers (the
gate) and ``Σ_l Σ_e (n_e A)² w_l`` for expert layers (``n_e`` states routed to expert ``e``);
memory ``O((N A)²)``. The full ``J`` (``N·A × #params``) is never formed.

Anything else (a module type not listed in ``_RULES``, a subclass of a listed type, a module called
twice, tied weights, an unexpected tensor layout) goes through an exact generic fallback that forms
the Jacobian of those parameters only, with batched vector-Jacobian products. ``verify=True`` checks
the final kernel end to end: ``vᵀKv = ‖Jᵀv‖²`` for a random ``v`` (one extra backward pass; ``A``
batched ones for the trace kernel).

Assumption of the structured path: sample ``n``'s mean depends only on state ``n`` and each listed
layer's batch axis is the state axis (true of every ``sphere_rl`` actor; BatchNorm in training mode
breaks it, and the verification then raises). Use ``structured=False`` for such networks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from sphere_rl.metrics.spectral import effective_rank
from sphere_rl.nn.layers import ExpertLayerNorm, ExpertLinear
from sphere_rl.nn.moe import dense_dispatch

_TILE = 16  # states per tile for expert Grams: small enough to waste little padding
_CHUNK_BYTES = 256 * 2**20  # bound on the temporary tile-pair Gram buffer


# --------------------------------------------------------------------------------------------------
# Per-layer kernel terms
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Term:
    """One layer's kernel contribution ``(X Xᵀ + const) ⊙ (D Dᵀ)`` in factored form.

    ``cotangent`` is ``(N, A, w)`` for a shared layer or ``(E, N, A, w)`` for stacked experts.
    ``inputs`` is ``(N, d)`` (shared by all experts when ``expert``), ``(E, N, d)``, or ``None``
    when the input factor is the constant itself.
    """

    cotangent: Tensor
    inputs: Tensor | None
    const: float
    expert: bool


@dataclass(frozen=True)
class _Rule:
    """How a known module type contributes: a layout check and the factored term."""

    accepts: Callable[[nn.Module, Tensor, Tensor, int], bool]
    term: Callable[[nn.Module, Tensor, Tensor], _Term]


def _linear_accepts(m: nn.Module, x: Tensor, y: Tensor, n: int) -> bool:
    return x.dim() == 2 and x.shape[0] == n and y.shape == (n, m.out_features)


def _linear_term(m: nn.Module, x: Tensor, cot: Tensor) -> _Term:
    # cot: (A, N, out)
    return _Term(cot.permute(1, 0, 2), x, 1.0 if m.bias is not None else 0.0, expert=False)


def _layer_norm_accepts(m: nn.Module, x: Tensor, y: Tensor, n: int) -> bool:
    return (
        m.weight is not None and len(m.normalized_shape) == 1 and x.dim() == 2 and x.shape[0] == n
    )


def _affine_features(cot: Tensor, x_hat: Tensor, has_bias: bool) -> Tensor:
    """Per-sample gradients of ``x̂ ⊙ γ + β``: ``[δ ⊙ x̂ | δ]`` along the last axis."""
    parts = [cot * x_hat, cot] if has_bias else [cot * x_hat]
    return torch.cat(parts, dim=-1)


def _layer_norm_term(m: nn.Module, x: Tensor, cot: Tensor) -> _Term:
    x_hat = F.layer_norm(x, m.normalized_shape, eps=m.eps)
    feats = _affine_features(cot, x_hat, m.bias is not None)  # (A, N, w)
    return _Term(feats.permute(1, 0, 2), None, 1.0, expert=False)


def _expert_linear_accepts(m: nn.Module, x: Tensor, y: Tensor, n: int) -> bool:
    shared = x.dim() == 2 and x.shape[0] == n
    stacked = x.dim() == 3 and x.shape[:2] == (m.n_experts, n)
    return (shared or stacked) and y.shape == (m.n_experts, n, m.out_features)


def _expert_linear_term(m: nn.Module, x: Tensor, cot: Tensor) -> _Term:
    # cot: (A, E, N, out)
    return _Term(cot.permute(1, 2, 0, 3), x, 1.0, expert=True)


def _expert_layer_norm_accepts(m: nn.Module, x: Tensor, y: Tensor, n: int) -> bool:
    e, d = m.weight.shape[0], m.weight.shape[-1]
    return x.shape == (e, n, d) and m.weight.shape == (e, 1, d) and m.bias.shape == (e, 1, d)


def _expert_layer_norm_term(m: nn.Module, x: Tensor, cot: Tensor) -> _Term:
    x_hat = F.layer_norm(x, x.shape[-1:], eps=m.eps)
    feats = _affine_features(cot, x_hat, has_bias=True)  # (A, E, N, 2d)
    return _Term(feats.permute(1, 2, 0, 3), None, 1.0, expert=True)


# Exact types only: a subclass may change forward(), so it goes through the fallback.
_RULES: dict[type, _Rule] = {
    nn.Linear: _Rule(_linear_accepts, _linear_term),
    nn.LayerNorm: _Rule(_layer_norm_accepts, _layer_norm_term),
    ExpertLinear: _Rule(_expert_linear_accepts, _expert_linear_term),
    ExpertLayerNorm: _Rule(_expert_layer_norm_accepts, _expert_layer_norm_term),
}


# --------------------------------------------------------------------------------------------------
# Forward pass with recorded layer calls
# --------------------------------------------------------------------------------------------------


@dataclass
class _Call:
    name: str
    module: nn.Module
    inputs: Tensor
    output: Tensor


@contextmanager
def _record_known_calls(actor: nn.Module) -> Iterator[list[_Call]]:
    calls: list[_Call] = []
    handles = []

    def make_hook(name: str) -> Callable:
        def hook(module: nn.Module, args: tuple, output: object) -> None:
            x = args[0] if args else None
            if isinstance(x, Tensor) and isinstance(output, Tensor):
                calls.append(_Call(name, module, x, output))
            else:  # an unusual call signature: record it so the module is excluded
                calls.append(_Call(name, module, torch.empty(0), torch.empty(0)))

        return hook

    for name, module in actor.named_modules():
        if type(module) in _RULES:
            handles.append(module.register_forward_hook(make_hook(name)))
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()


def _policy_mean(output: object) -> Tensor:
    mean = getattr(output, "mean", output)
    if not isinstance(mean, Tensor):
        raise TypeError("the actor must return a PolicyOutput (with .mean) or a tensor")
    return mean


def _accepted_calls(actor: nn.Module, calls: list[_Call], n: int) -> list[_Call]:
    """Calls the structured path handles exactly; their modules' parameters are then covered."""
    counts: dict[str, int] = {}
    for call in calls:
        counts[call.name] = counts.get(call.name, 0) + 1
    owners: dict[int, int] = {}
    for _, p in actor.named_parameters(remove_duplicate=False):
        owners[id(p)] = owners.get(id(p), 0) + 1
    accepted = []
    for call in calls:
        params = list(call.module.parameters(recurse=False))
        if (
            counts[call.name] == 1  # a second use would add cross terms between the two calls
            and all(owners.get(id(p), 0) == 1 for p in params)  # tied weights: same reason
            and call.output.requires_grad
            and _RULES[type(call.module)].accepts(call.module, call.inputs, call.output, n)
        ):
            accepted.append(call)
    return accepted


def _batched_grad(
    output: Tensor, inputs: list[Tensor], grad_outputs: Tensor
) -> tuple[Tensor | None, ...]:
    """Vector-Jacobian products for a leading batch of cotangents ``grad_outputs (B, *output)``."""
    if not inputs:
        return ()
    try:
        return torch.autograd.grad(
            output,
            inputs,
            grad_outputs,
            retain_graph=True,
            allow_unused=True,
            is_grads_batched=True,
        )
    except RuntimeError:  # an op without a vmap rule: one backward pass per cotangent instead
        rows = [
            torch.autograd.grad(output, inputs, g, retain_graph=True, allow_unused=True)
            for g in grad_outputs
        ]
        return tuple(
            None if rows[0][i] is None else torch.stack([r[i] for r in rows])
            for i in range(len(inputs))
        )


# --------------------------------------------------------------------------------------------------
# Kernel accumulation
# --------------------------------------------------------------------------------------------------


def _add_shared_term(kernel: Tensor, term: _Term, trace: bool) -> None:
    """Add ``(X Xᵀ + c) ⊙ (D Dᵀ)`` of a shared layer to ``kernel`` (``(N, A, N, A)`` or ``(N, N)``).

    In trace mode the output axis joins the feature axis, since ``Σ_a δ_n^a · δ_m^a`` is the dot
    product of the flattened ``(A·w)`` cotangents.
    """
    n, a, w = term.cotangent.shape
    rows = term.cotangent.reshape(n, a * w) if trace else term.cotangent.reshape(n * a, w)
    if term.inputs is None and term.const == 1.0:
        kernel.view(rows.shape[0], -1).addmm_(rows, rows.T)
        return
    gram = rows @ rows.T
    factor = term.const if term.inputs is None else term.inputs @ term.inputs.T + term.const
    if isinstance(factor, Tensor) and not trace:
        factor = factor[:, None, :, None]
    kernel.add_(gram.view(kernel.shape).mul_(factor))


@dataclass(frozen=True)
class _Tiles:
    """``(expert, state)`` pairs with a non-zero cotangent, packed into per-expert tiles.

    ``pair`` ``(T, t)`` indexes the flattened ``E·N`` pairs (``E·N`` = padding, a zero row);
    ``state`` ``(T, t)`` is the state of each slot (``N`` = padding); ``left``/``right`` ``(Q,)``
    list the tile pairs of the same expert with ``left ≤ right``.
    """

    pair: Tensor
    state: Tensor
    left: Tensor
    right: Tensor


def _pack_tiles(active: Tensor, tile: int) -> _Tiles:
    """Tile the active pairs of an ``(E, N)`` mask; every tile holds states of one expert only."""
    n_experts, n = active.shape
    device = active.device
    counts = active.sum(1)
    n_tiles = (counts + tile - 1) // tile
    first_tile = n_tiles.cumsum(0) - n_tiles
    expert_idx, state_idx = active.nonzero(as_tuple=True)  # sorted by expert
    rank = torch.arange(expert_idx.numel(), device=device) - (counts.cumsum(0) - counts)[expert_idx]
    slot = first_tile[expert_idx] * tile + rank
    total = int(n_tiles.sum()) * tile
    pair = torch.full((total,), n_experts * n, dtype=torch.long, device=device)
    pair[slot] = expert_idx * n + state_idx
    state = torch.full((total,), n, dtype=torch.long, device=device)
    state[slot] = state_idx
    tile_expert = torch.repeat_interleave(torch.arange(n_experts, device=device), n_tiles)
    index = torch.arange(tile_expert.numel(), device=device)
    upper = index[:, None] <= index[None, :]  # not bool.triu(), which not every backend supports
    left, right = ((tile_expert[:, None] == tile_expert[None, :]) & upper).nonzero(as_tuple=True)
    return _Tiles(pair.view(-1, tile), state.view(-1, tile), left, right)


def _gather_tiles(x: Tensor, pair: Tensor) -> Tensor:
    """``(E, N, *rest)`` → ``(T, t, *rest)`` along the packed pairs, padding with zeros."""
    flat = x.reshape(-1, *x.shape[2:])
    flat = torch.cat([flat, flat.new_zeros(1, *flat.shape[1:])])
    return flat[pair]


def _tile_input_factor(term: _Term, tiles: _Tiles, left: Tensor, right: Tensor) -> Tensor | float:
    """``(q, t, t)`` input factor ``x·x' + c`` for a chunk of tile pairs."""
    if term.inputs is None:
        return term.const
    if term.inputs.dim() == 2:  # the same input for every expert: one Gram, then gather
        x = term.inputs
        gram = F.pad(x @ x.T + term.const, (0, 1, 0, 1))
        return gram[tiles.state[left][:, :, None], tiles.state[right][:, None, :]]
    x_tiles = _gather_tiles(term.inputs, tiles.pair)
    return torch.bmm(x_tiles[left], x_tiles[right].transpose(1, 2)) + term.const


def _add_expert_terms(kernel_blocks: Tensor, terms: list[_Term], trace: bool) -> None:
    """Add ``Σ_e (X_e X_eᵀ + c) ⊙ (D_e D_eᵀ)`` of all stacked-expert terms with one routing.

    ``kernel_blocks`` is ``(N+1, N+1, A, A)`` (full) or ``(N+1, N+1)`` (trace), state-pair major
    with one padding state, so each tile-pair block lands with a single ``index_add_``.
    """
    n_experts, n, a, _ = terms[0].cotangent.shape
    # Pairs whose cotangent vanishes in every layer contribute nothing to any layer.
    active = torch.zeros(n_experts, n, dtype=torch.bool, device=kernel_blocks.device)
    for term in terms:
        active |= term.cotangent.ne(0).flatten(2).any(-1)
    tiles = _pack_tiles(active, _TILE)
    if tiles.left.numel() == 0:
        return
    t = _TILE
    rows_per_tile = t if trace else t * a
    # (T, t, A, w) → rows of one tile: t·A rows of width w, or t rows of width A·w (trace).
    cot_tiles = [
        _gather_tiles(term.cotangent, tiles.pair).reshape(len(tiles.pair), rows_per_tile, -1)
        for term in terms
    ]
    block_bytes = rows_per_tile**2 * kernel_blocks.element_size() * 2
    chunk = max(1, _CHUNK_BYTES // block_bytes)
    flat = kernel_blocks.view((n + 1) ** 2, *kernel_blocks.shape[2:])
    for start in range(0, tiles.left.numel(), chunk):
        left = tiles.left[start : start + chunk]
        right = tiles.right[start : start + chunk]
        acc = None
        for term, cot in zip(terms, cot_tiles, strict=True):
            gram = torch.bmm(cot[left], cot[right].transpose(1, 2))  # (q, rows, rows)
            factor = _tile_input_factor(term, tiles, left, right)
            if not trace:
                gram = gram.view(-1, t, a, t, a)
                if isinstance(factor, Tensor):
                    factor = factor[:, :, None, :, None]
            gram.mul_(factor)
            acc = gram if acc is None else acc.add_(gram)
        _scatter_tile_blocks(flat, acc, tiles.state[left], tiles.state[right], n + 1, trace)
        off = left != right  # the mirrored block of an off-diagonal tile pair
        if off.any():
            mirrored = acc[off].transpose(1, 2) if trace else acc[off].permute(0, 3, 4, 1, 2)
            _scatter_tile_blocks(
                flat, mirrored, tiles.state[right][off], tiles.state[left][off], n + 1, trace
            )


def _scatter_tile_blocks(
    flat: Tensor, blocks: Tensor, rows: Tensor, cols: Tensor, size: int, trace: bool
) -> None:
    """Accumulate tile-pair blocks into the flattened state-pair kernel.

    ``blocks`` is ``(q, t, t)`` (trace) or ``(q, t, A, t, A)``; ``rows``/``cols`` are ``(q, t)``.
    """
    index = (rows[:, :, None] * size + cols[:, None, :]).reshape(-1)
    values = blocks if trace else blocks.permute(0, 1, 3, 2, 4)
    flat.index_add_(0, index, values.reshape(index.numel(), *flat.shape[1:]))


def _qualified(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _structured_kernel(calls: list[_Call], mean: Tensor, trace: bool) -> Tensor:
    """Sum of the layer terms of ``calls``: ``(N, N)`` (trace) or ``(N, A, N, A)``."""
    n, a = mean.shape
    eye = torch.eye(a, dtype=mean.dtype, device=mean.device)
    # Direction a on every state at once: states are independent, so the gradient at layer
    # output y_n of Σ_n f_a(x_n) is the per-state cotangent ∂f_a(x_n)/∂y_n.
    directions = eye[:, None, :].expand(a, n, a).contiguous()
    cotangents = _batched_grad(mean, [c.output for c in calls], directions)
    shape = (n, n) if trace else (n, a, n, a)
    kernel = mean.new_zeros(shape)
    expert_terms: dict[tuple[int, ...], list[_Term]] = {}
    with torch.no_grad():
        for call, cot in zip(calls, cotangents, strict=True):
            if cot is None:  # the layer does not reach the mean
                continue
            term = _RULES[type(call.module)].term(call.module, call.inputs.detach(), cot)
            if term.expert:
                expert_terms.setdefault(tuple(term.cotangent.shape[:2]), []).append(term)
            else:
                _add_shared_term(kernel, term, trace)
        for terms in expert_terms.values():
            blocks_shape = (n + 1, n + 1) if trace else (n + 1, n + 1, a, a)
            blocks = mean.new_zeros(blocks_shape)
            _add_expert_terms(blocks, terms, trace)
            blocks = blocks[:n, :n]
            kernel.add_(blocks if trace else blocks.permute(0, 2, 1, 3))
    return kernel


def _reachable_leaves(output: Tensor, leaves: list[Tensor]) -> list[bool]:
    """Which ``leaves`` ``output`` depends on.

    Asked of autograd itself (one backward pass: ``None`` exactly for leaves off the graph) rather
    than by walking ``grad_fn`` nodes and matching tensor identities, which is not stable across
    PyTorch versions (torch 2.11 on CUDA matched none).
    """
    grads = torch.autograd.grad(
        output, leaves, torch.ones_like(output), retain_graph=True, allow_unused=True
    )
    return [g is not None for g in grads]


def _fallback_kernel(mean: Tensor, params: list[Tensor], trace: bool) -> Tensor | None:
    """``J Jᵀ`` for ``params`` only, from their Jacobian (one batched VJP per output entry)."""
    if not params:
        return None
    n, a = mean.shape
    eye = torch.eye(n * a, dtype=mean.dtype, device=mean.device).view(n * a, n, a)
    grads = [g for g in _batched_grad(mean, params, eye) if g is not None]
    if not grads:
        return None
    with torch.no_grad():
        jac = torch.cat([g.reshape(n * a, -1) for g in grads], dim=1)  # (N·A, P)
        if trace:
            per_output = jac.view(n, a, -1).transpose(0, 1)  # (A, N, P)
            return torch.bmm(per_output, per_output.transpose(1, 2)).sum(0)
        return jac @ jac.T


def _verify(kernel: Tensor, mean: Tensor, params: list[Tensor], trace: bool) -> None:
    """Raise unless ``vᵀKv = ‖Jᵀv‖²`` for a fixed random ``v``.

    Full kernel: one backward pass. Trace kernel: ``A`` (batched) backward passes, since
    ``vᵀ K_tr v = Σ_a ‖J_aᵀ v‖²`` needs each output's gradient separately.
    """
    n, a = mean.shape
    gen = torch.Generator(device=mean.device).manual_seed(0x5EED)
    if trace:
        # vᵀ K_tr v = Σ_a ‖J_aᵀ v‖²: one VJP per output (batched; memory A × #params).
        v = torch.randn(n, generator=gen, dtype=mean.dtype, device=mean.device)
        eye = torch.eye(a, dtype=mean.dtype, device=mean.device)
        grads = _batched_grad(mean, params, v[None, :, None] * eye[:, None, :])
        quad = v @ kernel @ v
    else:
        v = torch.randn(n, a, generator=gen, dtype=mean.dtype, device=mean.device)
        grads = torch.autograd.grad(mean, params, v, retain_graph=True, allow_unused=True)
        flat_v = v.reshape(-1)
        quad = flat_v @ kernel @ flat_v
    expected = sum(float(g.double().square().sum()) for g in grads if g is not None)
    quad = float(quad)
    # K is PSD, so vᵀKv is a sum without cancellation and a relative test is well posed.
    tol = torch.finfo(mean.dtype).eps ** 0.5
    if abs(quad - expected) > tol * max(abs(quad), abs(expected)):
        raise RuntimeError(
            f"structured eNTK failed its check (vᵀKv = {quad:.6g}, ‖Jᵀv‖² = {expected:.6g}): "
            "the actor probably mixes states within a batch (e.g. BatchNorm in training mode) "
            "or re-uses a layer's parameters outside its forward; call entk(..., structured=False)"
        )


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------


def entk(
    actor: nn.Module,
    obs: Tensor,
    trace_outputs: bool = False,
    *,
    structured: bool = True,
    verify: bool = True,
) -> Tensor:
    """Exact empirical NTK of the actor's action mean on a batch of states.

    The kernel is taken with respect to every parameter (trainable or not) that affects the mean:
    experts, expert head, gate, gate head and normalisation layers; parameters that do not reach the
    mean (``log_std``) contribute nothing. The actor is used in its current train/eval mode (a
    DS-MoE actor is dense in train mode and top-k in eval mode) and is not modified: gradients flow
    into detached copies of its parameters, so ``.grad`` is untouched.

    Args:
        actor: a module mapping ``(N, obs_dim)`` to a :class:`~sphere_rl.nn.PolicyOutput` (or
            directly to the ``(N, A)`` mean).
        obs: ``(N, obs_dim)`` states; cast to the actor's parameter dtype.
        trace_outputs: return the ``(N, N)`` output-traced kernel instead of the full one.
        structured: use the layer-structured algorithm (default); ``False`` forms the Jacobian
            of all parameters (exact and generic, but ``N·A × #params`` memory).
        verify: check ``vᵀKv = ‖Jᵀv‖²`` for a random ``v`` and raise if it fails (one backward
            pass for the full kernel, ``A`` batched ones for the trace kernel); only done when the
            structured path was used.

    Returns:
        ``(N·A, N·A)`` kernel ordered sample-major (``[n·A + a, m·A + b]``), or ``(N, N)`` with
        ``trace_outputs=True``; in the actor's parameter dtype, on its device.
    """
    named = dict(actor.named_parameters())
    if not named:
        raise ValueError("the actor has no parameters")
    reference = next(iter(named.values()))
    obs = obs.detach().to(dtype=reference.dtype, device=reference.device)
    leaves = {name: p.detach().requires_grad_(True) for name, p in named.items()}
    # Copies of the buffers absorb in-place updates (e.g. BatchNorm running statistics).
    buffers = {name: b.clone() for name, b in actor.named_buffers()}
    # Every expert on every state: the structured kernel expects the state axis in each layer.
    with torch.enable_grad(), _record_known_calls(actor) as calls, dense_dispatch(actor):
        mean = _policy_mean(functional_call(actor, {**leaves, **buffers}, (obs,)))
    if mean.dim() == 1:
        mean = mean.unsqueeze(-1)
    n, a = mean.shape
    with torch.enable_grad():
        accepted = _accepted_calls(actor, calls, n) if structured else []
        size = n if trace_outputs else n * a
        kernel = _structured_kernel(accepted, mean, trace_outputs).view(size, size)
        covered = {
            _qualified(c.name, p)
            for c in accepted
            for p, _ in c.module.named_parameters(recurse=False)
        }
        # Excludes log_std and anything else off the mean.
        reachable = dict(zip(leaves, _reachable_leaves(mean, list(leaves.values())), strict=True))
        used = [leaf for name, leaf in leaves.items() if reachable[name]]
        rest = [leaf for name, leaf in leaves.items() if name not in covered and reachable[name]]
        extra = _fallback_kernel(mean, rest, trace_outputs)
        if extra is not None:
            kernel = kernel + extra
        # BLAS Grams are symmetric only up to rounding; make K exactly symmetric.
        kernel = 0.5 * (kernel + kernel.T)
        if verify and accepted:
            _verify(kernel, mean, used, trace_outputs)
    return kernel.detach()


def entk_effective_rank(
    actor: nn.Module,
    obs: Tensor,
    trace_outputs: bool = False,
    *,
    rtol: float | None = None,
    eig_dtype: torch.dtype = torch.float64,
    **entk_kwargs: bool,
) -> float:
    """``r_e(K)`` of :func:`entk` (see :func:`~sphere_rl.metrics.effective_rank`).

    Args:
        actor, obs, trace_outputs: as for :func:`entk`; ``entk_kwargs`` are passed on to it.
        rtol: eigenvalue tolerance (default ``size · eps(kernel dtype)``).
        eig_dtype: dtype of the eigensolve; float64 by default. For the 4864-wide kernel of the
            paper-size actor on 256 states, float32 is faster (1.3-5x here) at an r_e error of
            about 1e-3 (see ``docs/metrics.md``).

    Returns:
        The effective rank of the kernel.
    """
    kernel = entk(actor, obs, trace_outputs, **entk_kwargs)
    return effective_rank(kernel, rtol=rtol, eig_dtype=eig_dtype)
