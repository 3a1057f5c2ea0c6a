"""Shared physics-only H1 models: one compiled model per process and arena, same physics as the
full visual model that every environment used to compile for itself."""

import mujoco
import numpy as np
import pytest

from sphere_rl.envs.h1 import make_h1_env
from sphere_rl.envs.h1 import model as model_module
from sphere_rl.envs.h1.model import build_h1_spec, load_h1_model, shared_physics_model

OPTIONS = [
    ("flat", "mesh", "humanoidbench"),
    ("poles", "mesh", "humanoidbench"),
    ("slides", "mesh", "humanoidbench"),
    ("flat", "mesh", "menagerie"),
    ("flat", "primitive", "menagerie"),
]
# Per-element arrays of the model that dynamics reads, compared whole (the elements are the same
# in both models: only geoms, meshes, materials and textures are dropped), except addresses into
# the geom lists and the per-body bounding-volume trees built from them.
_WHOLE_PREFIXES = ("body_", "jnt_", "dof_", "actuator_", "site_", "sensor_", "key_", "eq_")
# Geom fields compared on the colliding geoms (whose ids differ between the models).
_GEOM_FIELDS = (
    "type", "contype", "conaffinity", "condim", "bodyid", "priority", "solmix", "solref",
    "solimp", "margin", "gap", "friction", "size", "rbound", "aabb", "pos", "quat",
)  # fmt: skip
_MESH_FIELDS = ("pos", "quat", "vertnum", "graphadr", "scale")


def _arrays(model: mujoco.MjModel, prefixes: tuple[str, ...]) -> dict[str, np.ndarray]:
    return {
        name: getattr(model, name)
        for name in dir(model)
        if name.startswith(prefixes)
        and not name.endswith(("adr", "num"))
        and not name.startswith("body_bvh")
        and isinstance(getattr(model, name), np.ndarray)
    }


def _colliders(model: mujoco.MjModel) -> np.ndarray:
    return np.flatnonzero((model.geom_contype != 0) | (model.geom_conaffinity != 0))


@pytest.mark.parametrize("options", OPTIONS, ids="-".join)
def test_physics_only_model_has_the_full_models_dynamics(options):
    full, physics = load_h1_model(*options), shared_physics_model(*options)
    whole = _arrays(full, _WHOLE_PREFIXES)
    assert {"body_mass", "body_inertia", "body_ipos", "actuator_gainprm", "dof_armature"} <= set(
        whole
    )
    for name, value in whole.items():
        np.testing.assert_array_equal(getattr(physics, name), value, err_msg=name)
    for field in ("timestep", "gravity", "impratio", "tolerance", "iterations", "solver", "cone"):
        np.testing.assert_array_equal(getattr(physics.opt, field), getattr(full.opt, field))
    assert physics.stat.meaninertia == full.stat.meaninertia
    assert (physics.nq, physics.nv, physics.nu, physics.nbody) == (
        full.nq,
        full.nv,
        full.nu,
        full.nbody,
    )

    full_geoms, physics_geoms = _colliders(full), _colliders(physics)
    assert len(physics_geoms) == physics.ngeom  # nothing but colliders is left
    assert len(full_geoms) == len(physics_geoms)
    for field in _GEOM_FIELDS:
        np.testing.assert_array_equal(
            getattr(physics, f"geom_{field}"),
            getattr(full, f"geom_{field}")[full_geoms],
            err_msg=f"geom_{field}",
        )
    # Each collider mesh is the full model's, vertices and convex hull included.
    for geom, full_geom in zip(physics_geoms, full_geoms, strict=True):
        mesh, full_mesh = physics.geom_dataid[geom], full.geom_dataid[full_geom]
        if physics.geom_type[geom] != mujoco.mjtGeom.mjGEOM_MESH:
            continue
        for field in ("pos", "quat", "vertnum"):
            np.testing.assert_array_equal(
                getattr(physics, f"mesh_{field}")[mesh], getattr(full, f"mesh_{field}")[full_mesh]
            )
        start, full_start, n = (
            physics.mesh_vertadr[mesh],
            full.mesh_vertadr[full_mesh],
            full.mesh_vertnum[full_mesh],
        )
        np.testing.assert_array_equal(
            physics.mesh_vert[start : start + n], full.mesh_vert[full_start : full_start + n]
        )
    assert physics.ntex == 0 and physics.nmat == 0
    assert physics.nmeshvert <= full.nmeshvert and physics.ngeom < full.ngeom


def test_envs_of_one_arena_share_one_model_and_one_workspace_but_keep_their_states():
    walk, run = make_h1_env("h1-walk", seed=0), make_h1_env("h1-run", seed=1)
    pole = make_h1_env("h1-pole", seed=0)
    assert walk.unwrapped.model is run.unwrapped.model  # both on the flat arena
    assert pole.unwrapped.model is not walk.unwrapped.model
    assert walk.unwrapped.data is run.unwrapped.data  # one MjData per model and thread
    assert pole.unwrapped.data is not walk.unwrapped.data
    obs_walk, _ = walk.reset()
    obs_run, _ = run.reset()
    assert not np.array_equal(obs_walk, obs_run)  # different seeds
    # Each access shows that environment's own state, whoever used the workspace last.
    np.testing.assert_array_equal(walk.unwrapped.data.qpos.astype(np.float32), obs_walk[:26])
    np.testing.assert_array_equal(run.unwrapped.data.qpos.astype(np.float32), obs_run[:26])
    assert walk.unwrapped.model is shared_physics_model("flat")
    private = make_h1_env("h1-walk", seed=0, physics_model="private")
    assert private.unwrapped.model is not walk.unwrapped.model
    assert private.unwrapped.model.ngeom > walk.unwrapped.model.ngeom  # the full visual model


def test_physics_only_model_refuses_bodies_that_take_inertia_from_geoms():
    spec = build_h1_spec("flat")
    spec.body("left_elbow_link").explicitinertial = False
    from sphere_rl.envs.h1.model import _strip_visuals

    with pytest.raises(ValueError, match="left_elbow_link"):
        _strip_visuals(spec)


def test_unknown_physics_model_is_refused():
    with pytest.raises(ValueError, match=r"physics_model.*shared, private"):
        make_h1_env("h1-walk", physics_model="tiny")


def _contacts(model: mujoco.MjModel, data: mujoco.MjData) -> tuple[np.ndarray, ...]:
    """The active contacts' bodies (geom ids differ between the models), points and normals."""
    contact = data.contact
    bodies = model.geom_bodyid[np.stack([contact.geom1, contact.geom2], axis=-1)]
    return bodies, contact.pos.copy(), contact.frame.copy(), contact.dist.copy()


@pytest.mark.parametrize("task", ["h1-walk", "h1-pole", "h1-slide"])
def test_shared_physics_only_env_steps_exactly_like_a_private_full_model(task):
    shared = make_h1_env(task, seed=3)
    private = make_h1_env(task, seed=3, physics_model="private")
    assert shared.unwrapped.physics_only and not private.unwrapped.physics_only
    rng = np.random.default_rng(0)
    obs_a, _ = shared.reset()
    obs_b, _ = private.reset()
    np.testing.assert_array_equal(obs_a, obs_b)
    contact_steps = resets = 0
    for _ in range(300):
        action = rng.uniform(-1.0, 1.0, 19).astype(np.float32)
        out_a, out_b = shared.step(action), private.step(action)
        for a, b in zip(out_a, out_b, strict=True):
            if isinstance(a, dict):
                assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
            else:
                np.testing.assert_array_equal(a, b)
        base_a, base_b = shared.unwrapped, private.unwrapped
        np.testing.assert_array_equal(base_a.data.qpos, base_b.data.qpos)
        np.testing.assert_array_equal(base_a.data.qvel, base_b.data.qvel)
        np.testing.assert_array_equal(base_a.data.qacc_warmstart, base_b.data.qacc_warmstart)
        assert base_a.data.ncon == base_b.data.ncon
        for a, b in zip(
            _contacts(base_a.model, base_a.data), _contacts(base_b.model, base_b.data), strict=True
        ):
            np.testing.assert_array_equal(a, b)
        contact_steps += base_a.data.ncon > 0
        if out_a[2] or out_a[3]:
            resets += 1
            np.testing.assert_array_equal(shared.reset()[0], private.reset()[0])
    assert contact_steps > 100  # the feet (and the fallen robot) touch the ground
    assert resets >= 1  # random actions topple the robot: resets are covered too


def _assert_same_step(out_a: tuple, out_b: tuple) -> None:
    for a, b in zip(out_a, out_b, strict=True):
        if isinstance(a, dict):
            assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
        else:
            np.testing.assert_array_equal(a, b)


# Tasks on one arena (one workspace) and seeds, so that their states differ.
_INTERLEAVED = [("h1-walk", 0), ("h1-run", 1), ("h1-stand", 2), ("h1-walk", 3), ("h1-run", 4)]


def test_interleaved_envs_on_one_workspace_step_exactly_like_private_envs_alone():
    """Environments taking turns on one MjData, in a shuffled order, with snapshots restored into
    other environments mid-way, against private full models each stepped on its own."""
    n_steps = 120
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1.0, 1.0, (len(_INTERLEAVED), n_steps, 19)).astype(np.float32)

    def run_alone(index: int) -> list:
        task, seed = _INTERLEAVED[index]
        env = make_h1_env(task, seed=seed, physics_model="private")
        outs = [env.reset()]
        for t in range(n_steps):
            outs.append(env.step(actions[index, t]))
            if outs[-1][2] or outs[-1][3]:
                outs.append(env.reset())
        return outs

    expected = [run_alone(i) for i in range(len(_INTERLEAVED))]

    envs = [make_h1_env(task, seed=seed) for task, seed in _INTERLEAVED]
    assert len({id(env.unwrapped.data) for env in envs}) == 1
    got: list[list] = [[env.reset()] for env in envs]
    steps = [0] * len(envs)
    while any(t < n_steps for t in steps):
        index = int(rng.choice([i for i, t in enumerate(steps) if t < n_steps]))
        env = envs[index]
        got[index].append(env.step(actions[index, steps[index]]))
        steps[index] += 1
        if got[index][-1][2] or got[index][-1][3]:
            got[index].append(env.reset())
        if steps[index] == n_steps // 2:
            # Carry on in a fresh environment from a snapshot, as a resumed run does.
            task, seed = _INTERLEAVED[index]
            replacement = make_h1_env(task, seed=seed + 100)
            replacement.set_state(env.get_state())
            env.close()
            envs[index] = replacement
    resets = 0
    for want, have in zip(expected, got, strict=True):
        assert len(want) == len(have)
        for a, b in zip(want, have, strict=True):
            if len(a) == 2:  # a reset
                resets += 1
                np.testing.assert_array_equal(a[0], b[0])
                assert a[1] == b[1]
            else:
                _assert_same_step(a, b)
    assert resets > len(_INTERLEAVED)  # falls happened: resets on the workspace are covered


def test_envs_stepped_from_two_threads_use_separate_workspaces():
    import threading

    def trajectory(physics_model: str, seed: int, out: list) -> None:
        env = make_h1_env("h1-walk", seed=seed, physics_model=physics_model)
        rng = np.random.default_rng(seed)
        obs = [env.reset()[0]]
        for _ in range(60):
            obs.append(env.step(rng.uniform(-1, 1, 19).astype(np.float32))[0])
        out.append((seed, np.stack(obs), id(env.unwrapped.data)))

    got: list = []
    threads = [threading.Thread(target=trajectory, args=("shared", s, got)) for s in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert got[0][2] != got[1][2]  # each thread its own MjData
    for seed, obs, _ in got:
        private: list = []
        trajectory("private", seed, private)
        np.testing.assert_array_equal(obs, private[0][1])


@pytest.mark.parametrize("options", OPTIONS[:3], ids="-".join)
def test_the_model_compiled_in_a_child_process_is_the_one_compiled_here(options):
    # The shared model is compiled by a child and loaded from its .mjb (memory peak): every
    # array, the options and the statistics must be what compiling the same spec here gives.
    here = build_h1_spec(*options, physics_only=True).compile()
    loaded = shared_physics_model(*options)
    arrays = [n for n in dir(here) if isinstance(getattr(here, n, None), np.ndarray)]
    assert len(arrays) > 300
    for name in arrays:
        np.testing.assert_array_equal(getattr(loaded, name), getattr(here, name), err_msg=name)
    for struct in ("opt", "stat"):
        assert repr(getattr(loaded, struct)) == repr(getattr(here, struct))


def test_a_failing_compilation_child_is_reported_with_its_reason(monkeypatch):
    monkeypatch.setattr(model_module, "_COMPILE", "raise SystemExit('no room for meshes')")
    with pytest.raises(RuntimeError, match=r"compiling the H1 model \(flat, mesh, humanoidbench\)"
                       r" failed: no room for meshes"):  # fmt: skip
        model_module._compiled_in_child("flat", "mesh", "humanoidbench")
