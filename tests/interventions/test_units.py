"""The unit views: they alias the parameters, and replacing units keeps the network's function."""

import pytest
import torch

from sphere_rl.interventions import hidden_units, orthogonal_init, reinitialize_units_, towers
from sphere_rl.interventions.units import unit_activations
from sphere_rl.nn import MLPActor, MLPCritic, TopKMoEActor
from sphere_rl.nn.layers import HIDDEN_GAIN
from sphere_rl.nn.moe import dense_dispatch


def moe_actor(**kwargs) -> TopKMoEActor:
    return TopKMoEActor(6, 2, n_experts=4, top_k=2, hidden=(8, 5), **kwargs)


def test_views_alias_the_parameters_unit_major():
    actor = moe_actor()
    experts, gate = towers(actor, "actor", 0.01)
    layer = hidden_units(experts)[0]
    assert layer.shape == (4, 8)
    assert layer.incoming.get().shape == (4, 8, 6)  # (E, units, fan_in)
    assert layer.outgoing.get().shape == (4, 5, 8)  # (E, fan_out, units)
    with torch.no_grad():
        layer.incoming.get()[2, 3].fill_(7.0)
        layer.outgoing.get()[1, :, 4].fill_(-1.0)
    assert (actor.experts.linears[0].weight[2, :, 3] == 7.0).all()
    assert (actor.experts.linears[1].weight[1, 4, :] == -1.0).all()
    gate_layers = hidden_units(gate)
    assert [g.shape for g in gate_layers] == [(1, 8), (1, 5)]
    assert gate_layers[-1].outgoing.param is actor.gate_head.weight


def test_activations_are_expert_major():
    actor = moe_actor()
    layers = [u for t in towers(actor, "actor", 0.01) for u in hidden_units(t)]
    obs = torch.randn(10, 6)
    with torch.no_grad(), dense_dispatch(actor):  # every expert on every state, as the units
        acts = unit_activations(layers, obs)
        expected = actor(obs).hidden
    assert [a.shape for a in acts] == [(4, 10, 8), (4, 10, 5), (1, 10, 8), (1, 10, 5)]
    torch.testing.assert_close(acts[1], expected[1].transpose(0, 1))


@pytest.mark.parametrize(("rows", "cols"), [(4, 9), (9, 4)])
def test_orthogonal_init_is_batched_and_scaled(rows, cols):
    w = orthogonal_init((3, rows, cols), 2.0, like=torch.empty(0, dtype=torch.float64))
    small = min(rows, cols)
    gram = w @ w.transpose(-1, -2) if rows <= cols else w.transpose(-1, -2) @ w
    torch.testing.assert_close(gram, 4.0 * torch.eye(small, dtype=torch.float64).expand(3, -1, -1))
    assert not torch.allclose(w[0], w[1])


@pytest.mark.parametrize("network", ["dense", "moe", "critic"])
def test_replaced_units_leave_the_output_unchanged(network):
    net = {"dense": lambda: MLPActor(6, 2, hidden=(8, 5)), "moe": moe_actor,
           "critic": lambda: MLPCritic(6, hidden=(8, 5))}[network]()  # fmt: skip
    # Move away from the initialisation (small policy head) so that any leak would show.
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    obs = torch.randn(20, 6)
    out = (lambda: net(obs)) if network == "critic" else (lambda: net(obs).mean)
    optimizer = torch.optim.Adam(net.parameters())
    out().square().sum().backward()
    optimizer.step()  # Adam state to clear
    layers = [u for t in towers(net, "net", 1.0) for u in hidden_units(t)]
    masks = [torch.rand(layer.shape) < 0.5 for layer in layers]
    with torch.no_grad():  # the units to replace contribute nothing (zero utility)...
        for layer, mask in zip(layers, masks, strict=True):
            layer.outgoing.get().masked_fill_(mask.unsqueeze(-2), 0.0)
    before = out().detach()
    for layer, mask in zip(layers, masks, strict=True):
        old_in = layer.incoming.get().clone()
        reinitialize_units_(layer, mask, [optimizer])
        new_in = layer.incoming.get()
        assert (new_in[mask] != old_in[mask]).all() and (new_in[~mask] == old_in[~mask]).all()
        norms = new_in[mask].norm(dim=-1)  # wide-or-square fresh rows have norm = gain
        if new_in.shape[-1] >= new_in.shape[-2]:
            torch.testing.assert_close(norms, torch.full_like(norms, HIDDEN_GAIN))
        assert (layer.bias.get()[mask] == 0).all()
        assert (layer.outgoing.get().transpose(-1, -2)[mask] == 0).all()
        state = optimizer.state[layer.incoming.param]["exp_avg"]
        assert (layer.incoming.get(state)[mask] == 0).all()
        assert (layer.incoming.get(state)[~mask] != 0).any()
    torch.testing.assert_close(out().detach(), before)  # ...and their successors neither


def test_layer_norm_affine_is_reset():
    actor = moe_actor(layer_norm=True)
    layer = hidden_units(towers(actor, "actor", 0.01)[0])[0]
    with torch.no_grad():
        for slot, _ in layer.affine:
            slot.param.add_(1.0)
    mask = torch.zeros(layer.shape, dtype=torch.bool)
    mask[1, 2] = True
    reinitialize_units_(layer, mask)
    (scale, one), (shift, zero) = layer.affine
    assert (one, zero) == (1.0, 0.0)
    assert scale.get()[1, 2] == 1.0 and shift.get()[1, 2] == 0.0
    assert scale.get()[0, 2] == 2.0 and shift.get()[1, 1] == 1.0
