"""HumanoidBench's foot collider (a 30 cm × 3 cm sole) against Menagerie's ankle mesh."""

import mujoco
import numpy as np
import pytest

from sphere_rl.envs.h1 import make_h1_env
from sphere_rl.envs.h1.model import HUMANOIDBENCH_SOLE, QPOS0, SOLE_MESH, load_h1_model

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
        # MuJoCo's own bounding box of the geom (centre, half-sizes in the geom frame) agrees.
        centre, half = model.geom_aabb[geom, :3], model.geom_aabb[geom, 3:]
        corners = _body_frame_points(model, geom, np.array([centre - half, centre + half]))
        np.testing.assert_allclose(np.sort(corners, axis=0), [SOLE_LOW, SOLE_HIGH], atol=1e-6)
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


def _hold_action(model: mujoco.MjModel) -> np.ndarray:
    """The action whose position targets are the keyframe's joint angles."""
    joints = model.jnt_qposadr[model.actuator_trnid[:, 0]]
    low, high = model.actuator_ctrlrange.T
    return ((QPOS0[joints] - (low + high) / 2) / ((high - low) / 2)).astype(np.float32)


def _settle(feet: str, steps: int):
    env = make_h1_env("h1-stand", seed=0, feet=feet, reset_noise=0.0)
    env.reset()
    base = env.unwrapped
    action = _hold_action(base.model)
    heights = []
    for _ in range(steps):
        _, _, terminated, _, _ = env.step(action)
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
        assert len(points) >= 3, side  # a flat sole rests on several points
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
    base, heights = _settle(feet, steps=300)  # 6 s of holding the start pose
    assert heights.min() > 0.9  # pelvis starts at 0.98 m; a fall ends far lower
    assert np.ptp(heights[100:]) < 0.01  # and it is at rest, not sinking or bouncing
    assert np.linalg.norm(base.data.qpos[:2]) < 0.05  # no sliding away
    assert base.data.xmat[base.model.body("torso_link").id][8] > 0.99  # upright
