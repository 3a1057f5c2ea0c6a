"""Shared physics-only H1 models: one compiled model per process and arena, same physics as the
full visual model that every environment used to compile for itself."""

import mujoco
import numpy as np
import pytest

from sphere_rl.envs.h1 import make_h1_env
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


def test_envs_of_one_arena_share_one_model_and_own_their_data():
    walk, run = make_h1_env("h1-walk", seed=0), make_h1_env("h1-run", seed=1)
    pole = make_h1_env("h1-pole", seed=0)
    assert walk.unwrapped.model is run.unwrapped.model  # both on the flat arena
    assert pole.unwrapped.model is not walk.unwrapped.model
    assert walk.unwrapped.data is not run.unwrapped.data
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
