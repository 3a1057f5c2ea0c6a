"""HumanoidBench's foot collider (a 30 cm × 3 cm sole) against Menagerie's ankle mesh."""

import mujoco
import numpy as np
import pytest

from sphere_rl.config import build_config
from sphere_rl.envs import make_vector_env
from sphere_rl.envs.h1 import make_h1_env
from sphere_rl.envs.h1.model import (
    COM_VELOCITY_SENSOR,
    HUMANOIDBENCH_SOLE,
    QPOS0,
    SOLE_MESH,
    load_h1_model,
)
from sphere_rl.envs.registry import task_options

SIDES = ("left", "right")
# HumanoidBench's foot mesh hull in the ankle-link frame (docs/h1-rebuild.md).
SOLE_LOW, SOLE_HIGH = np.array([-0.100, -0.015, -0.070]), np.array([0.200, 0.015, 0.011])


def _body_frame_points(model: mujoco.MjModel, geom: int, local: np.ndarray) -> np.ndarray:
    """``(V, 3)`` geom-frame points expressed in the geom's body frame."""
    rotation = np.empty(9)
    mujoco.mju_quat2Mat(rotation, model.geom_quat[geom])
    return local @ rotation.reshape(3, 3).T + model.geom_pos[geom]


def _ankle_colliders(model: mujoco.MjModel, side: str) -> list[int]:
    body = model.body(f"{side}_ankle_link").id
    return [g for g in range(model.ngeom) if model.geom_bodyid[g] == body and model.geom_contype[g]]


def _mesh_vertices(model: mujoco.MjModel, geom: int) -> np.ndarray:
    """The collider's vertices in its body frame, as MuJoCo stores them after compilation."""
    mesh = model.geom_dataid[geom]
    start, count = model.mesh_vertadr[mesh], model.mesh_vertnum[mesh]
    return _body_frame_points(model, geom, model.mesh_vert[start : start + count].astype(float))


# (start, direction, hit point along the ray's axis, tolerance), all in the ankle frame: rays from outside
# the foot towards it, through the plate's mid-height (z = -0.0655) or straight up/down.
RAYS = (
    ((1.0, 0.0, -0.0655), (-1, 0, 0), 0.200, 1e-6),  # toe
    ((-1.0, 0.0, -0.0655), (1, 0, 0), -0.100, 1e-6),  # heel
    ((0.05, 1.0, -0.0655), (0, -1, 0), 0.015, 1e-6),  # sides
    ((0.05, -1.0, -0.0655), (0, 1, 0), -0.015, 1e-6),
    ((0.15, 0.0, -1.0), (0, 0, 1), -0.070, 1e-6),  # flat bottom face, front and back
    ((-0.08, 0.01, -1.0), (0, 0, 1), -0.070, 1e-6),
    ((0.0, 0.0, 1.0), (0, 0, -1), 0.011, 1e-6),  # ankle top
    ((0.197, 0.0, 1.0), (0, 0, -1), -0.061, 1e-3),  # both ends rise only to about the plate top
    ((-0.097, 0.0, 1.0), (0, 0, -1), -0.061, 1e-3),
)


def _ray_hit(model, side: str, geom: int, start, direction) -> float:
    """Coordinate, along the ray's axis in the ankle frame, where the ray first meets ``geom``."""
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    body = model.body(f"{side}_ankle_link").id
    rotation = data.xmat[body].reshape(3, 3)
    start, direction = np.asarray(start, float), np.asarray(direction, float)
    distance = mujoco.mj_rayMesh(
        model, data, geom, data.xpos[body] + rotation @ start, rotation @ direction
    )
    assert distance > 0, "the ray missed the collider"
    return float((start + distance * direction) @ np.abs(direction))


@pytest.mark.parametrize("collision", ["mesh", "primitive"])
def test_sole_collider_extent_in_the_ankle_frame(collision):
    model = load_h1_model("flat", collision)
    for side in SIDES:
        (geom,) = _ankle_colliders(model, side)  # the sole replaces every ankle collider
        assert model.geom_type[geom] == mujoco.mjtGeom.mjGEOM_MESH
        assert model.mesh(model.geom_dataid[geom]).name == SOLE_MESH
        points = _mesh_vertices(model, geom)
        np.testing.assert_allclose(points.min(axis=0), SOLE_LOW, atol=1e-6)
        np.testing.assert_allclose(points.max(axis=0), SOLE_HIGH, atol=1e-6)
        # MuJoCo's own ray casts against the compiled collider find its surface at the extent.
        for start, direction, expected, tolerance in RAYS:
            assert _ray_hit(model, side, geom, start, direction) == pytest.approx(
                expected, abs=tolerance
            ), (start, direction)
        # Flat bottom face: the lowest points span the inset 29 cm × 2.5 cm rectangle.
        bottom = points[points[:, 2] < SOLE_LOW[2] + 1e-6]
        np.testing.assert_allclose(bottom[:, :2].min(axis=0), [-0.095, -0.0125], atol=1e-6)
        np.testing.assert_allclose(bottom[:, :2].max(axis=0), [0.195, 0.0125], atol=1e-6)
        # Both ends are a plate about 1 cm thick; the top (the ankle) is small and near x = 0.
        ends = points[(points[:, 0] < -0.09) | (points[:, 0] > 0.19)]
        assert ends[:, 2].max() == pytest.approx(HUMANOIDBENCH_SOLE.plate_top_z, abs=1e-6)
        top = points[points[:, 2] > SOLE_HIGH[2] - 1e-6]
        assert np.abs(top[:, :2]).max() <= 0.011 + 1e-6


def test_menagerie_option_keeps_the_wider_ankle_mesh():
    model = load_h1_model("flat", "mesh", feet="menagerie")
    for side in SIDES:
        (geom,) = _ankle_colliders(model, side)
        assert model.mesh(model.geom_dataid[geom]).name == f"{side}_ankle_link"
        points = _mesh_vertices(model, geom)
        # The reference facts: x ∈ [−0.065, 0.175], y ∈ [−0.040, 0.040] (8 cm wide, not 3 cm).
        np.testing.assert_allclose(points.min(axis=0)[:2], [-0.065, -0.040], atol=2e-3)
        np.testing.assert_allclose(points.max(axis=0)[:2], [0.175, 0.040], atol=2e-3)
    with pytest.raises(ValueError, match="unknown feet 'boots'"):
        load_h1_model("flat", feet="boots")


def _balance_action(base) -> np.ndarray:
    """Hold the keyframe pose, with the ankles nudged to keep the centre of mass over the soles.

    A pure hold does not stand: HumanoidBench's ankle servos (kp = 40 N·m/rad) yield under the
    robot's weight and it tips backwards after about a second, on either foot collider. A
    proportional-derivative correction of the ankle targets on the centre of mass's position
    relative to the soles' centre (5 cm ahead of the ankles) is the least a policy must learn.
    """
    model, data = base.model, base.data
    joints = model.actuator_trnid[:, 0]
    target = QPOS0[model.jnt_qposadr[joints]].copy()
    ankles = [np.flatnonzero(joints == model.joint(f"{s}_ankle").id)[0] for s in SIDES]
    soles_x = np.mean([data.xpos[model.body(f"{s}_ankle_link").id][0] for s in SIDES]) + 0.05
    com = data.subtree_com[model.body("pelvis").id]
    com_velocity = data.sensor(COM_VELOCITY_SENSOR).data
    target[ankles] += 10.0 * (com[0] - soles_x) + 1.0 * com_velocity[0]
    low, high = model.actuator_ctrlrange.T
    return np.clip((target - (low + high) / 2) / ((high - low) / 2), -1, 1).astype(np.float32)


def _settle(feet: str, steps: int):
    env = make_h1_env("h1-stand", seed=0, feet=feet)
    env.reset()
    base = env.unwrapped
    heights = []
    for _ in range(steps):
        _, _, terminated, _, _ = env.step(_balance_action(base))
        assert not terminated
        heights.append(base.data.qpos[2])
    return base, np.asarray(heights)


def _foot_floor_contacts(base, side: str) -> np.ndarray:
    """``(C, 3)`` contact positions between ``side``'s foot and the floor, in its ankle frame."""
    model, data = base.model, base.data
    floor = model.geom("floor").id
    feet = set(_ankle_colliders(model, side))
    body = model.body(f"{side}_ankle_link").id
    points = []
    for contact in data.contact[: data.ncon]:
        pair = {int(contact.geom[0]), int(contact.geom[1])}
        if floor in pair and pair & feet:
            local = data.xmat[body].reshape(3, 3).T @ (contact.pos - data.xpos[body])
            points.append(local)
    return np.asarray(points)


def test_keyframe_contacts_lie_on_the_sole_bottom_face():
    base, _ = _settle("humanoidbench", steps=100)
    for side in SIDES:
        points = _foot_floor_contacts(base, side)
        assert len(points) >= 2, side  # a flat sole rests on (at least) a heel and a toe point
        # Contact points sit half-way into the (sub-millimetre) penetration below the face.
        np.testing.assert_allclose(points[:, 2], SOLE_LOW[2], atol=2e-3)
        assert (points[:, 0] >= SOLE_LOW[0] - 1e-3).all() and (points[:, 0] <= 0.2 + 1e-3).all()
        assert np.abs(points[:, 1]).max() <= 0.015 + 1e-3
        # The sole is used along its length: contacts near both ends of the 30 cm foot.
        assert np.ptp(points[:, 0]) > 0.2, side
    # Menagerie's 8 cm ankle mesh touches the floor outside the 3 cm sole.
    wide, _ = _settle("menagerie", steps=100)
    assert max(np.abs(_foot_floor_contacts(wide, s)[:, 1]).max() for s in SIDES) > 0.02


@pytest.mark.parametrize("feet", ["humanoidbench", "menagerie"])
def test_robot_stands_on_its_feet_holding_the_keyframe_pose(feet):
    base, heights = _settle(feet, steps=300)  # 6 s
    assert heights.min() > 0.9  # pelvis starts at 0.98 m; a fall ends far lower
    assert np.ptp(heights[100:]) < 0.01  # and it is at rest, not sinking or bouncing
    assert np.linalg.norm(base.data.qpos[:2]) < 0.15  # the balance shift only, no walking off
    assert base.data.xmat[base.model.body("torso_link").id][8] > 0.99  # upright


def test_h1_feet_key_reaches_the_environments():
    assert build_config({"preset": "hb5"}).h1_feet == "humanoidbench"
    with pytest.raises(ValueError, match="h1_feet must be one of"):
        build_config({"h1_feet": "boots"})
    assert task_options("reach-v3", h1_feet="menagerie") == {}  # MetaWorld has no such option
    for feet in ("humanoidbench", "menagerie"):
        options = task_options("h1-walk", h1_feet=feet)
        assert options == {"feet": feet}
        env = make_vector_env("h1-walk", num_envs=1, **options)
        model = env._backend._vec.envs[0].unwrapped.model
        (geom,) = _ankle_colliders(model, "left")
        expected = SOLE_MESH if feet == "humanoidbench" else "left_ankle_link"
        assert model.mesh(model.geom_dataid[geom]).name == expected
        env.close()
