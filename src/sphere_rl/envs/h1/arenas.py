"""Static scenery for the H1 tasks: flat ground, HumanoidBench's pole forest and its ramp course.

Every object is a static geom (its body has no joint), so arenas add no state: the robot's
qpos/qvel stay 26 + 25 values. Geometry follows HumanoidBench's generated ``pole`` and ``slide``
scene files (see ``docs/h1-rebuild.md``). Each object is a single geom that both collides and renders;
HumanoidBench splits each into an invisible collider plus a non-colliding visual twin, which is the
same physics.
"""

from __future__ import annotations

from collections.abc import Callable

import mujoco
import numpy as np

ARENAS: tuple[str, ...] = ("flat", "poles", "slides")

# Pole forest: thin vertical cylinders in rows one metre apart along +x, alternating four and three
# poles per row so that every straight line along x is blocked within two rows.
POLE_GEOM_PREFIX = "pole_r"
POLE_RADIUS = 0.05
POLE_HALF_HEIGHT = 1.0
POLE_ROWS = 41
POLE_ROW_SPACING = 1.0
POLE_Y_ODD_ROWS = (2.25, 0.75, -0.75, -2.25)
POLE_Y_EVEN_ROWS = (1.5, 0.0, -1.5)
# Corridor walls as (name, centre, half-size): two side walls and one behind the start.
POLE_BARRIERS: tuple[tuple[str, tuple[float, float, float], tuple[float, float, float]], ...] = (
    ("left_barrier", (20.0, -3.15, 1.0), (20.75, 0.15, 1.0)),
    ("right_barrier", (20.0, 3.15, 1.0), (20.75, 0.15, 1.0)),
    ("behind_barrier", (-0.6, 0.0, 1.0), (0.15, 3.0, 1.0)),
)

# Ramp course: a triangular prism 10 m long (x from 0.3 to 10.3), 10 m wide and 1.75 m high at its
# ridge, repeated every 10 m, so the robot walks up and down a ~19 degree slope, in a walled lane.
RAMP_VERTICES = np.array(
    [
        (0.3, 5.0, 0.0),
        (0.3, -5.0, 0.0),
        (5.3, 5.0, 1.75),
        (5.3, -5.0, 1.75),
        (10.3, 5.0, 0.0),
        (10.3, -5.0, 0.0),
    ],
    float,
)
RAMP_COUNT = 9
RAMP_SPACING = 10.0
RAMP_WALLS: tuple[tuple[str, tuple[float, float, float], tuple[float, float, float]], ...] = (
    ("slide_wall_right", (48.85, -5.15, 4.0), (53.0, 0.15, 4.0)),
    ("slide_wall_left", (48.85, 5.15, 4.0), (53.0, 0.15, 4.0)),
    ("slide_wall_behind", (-4.0, 0.0, 4.0), (0.15, 5.15, 4.0)),
)

_POLE_RGBA = (0.5, 0.5, 0.5, 1.0)
_BARRIER_RGBA = (0.9, 0.9, 0.9, 0.2)
_RAMP_RGBA = (0.6, 0.6, 0.6, 1.0)


def pole_positions() -> np.ndarray:
    """(x, y) of every pole in the forest, row by row; shape (n_poles, 2)."""
    points = []
    for row in range(1, POLE_ROWS + 1):
        ys = POLE_Y_ODD_ROWS if row % 2 else POLE_Y_EVEN_ROWS
        points.extend((row * POLE_ROW_SPACING, y) for y in ys)
    return np.array(points, float)


def _static_geom(body: mujoco.MjsBody, name: str, rgba: tuple[float, ...]) -> mujoco.MjsGeom:
    geom = body.add_geom()
    geom.name = name
    geom.rgba = np.array(rgba, float)
    return geom


def _add_box(body: mujoco.MjsBody, name: str, centre, half_size, rgba) -> None:
    geom = _static_geom(body, name, rgba)
    geom.type = mujoco.mjtGeom.mjGEOM_BOX
    geom.pos = np.array(centre, float)
    geom.size = np.array(half_size, float)


def _add_pole_forest(spec: mujoco.MjSpec) -> None:
    for name, centre, half_size in POLE_BARRIERS:
        body = spec.worldbody.add_body()
        body.name = name
        _add_box(body, name, centre, half_size, _BARRIER_RGBA)
    forest = spec.worldbody.add_body()
    forest.name = "pole_rows"
    for row in range(1, POLE_ROWS + 1):
        row_body = forest.add_body()
        row_body.name = f"pole_row_{row}"
        row_body.pos = np.array((row * POLE_ROW_SPACING, 0.0, 0.0))
        ys = POLE_Y_ODD_ROWS if row % 2 else POLE_Y_EVEN_ROWS
        for column, y in enumerate(ys, start=1):
            geom = _static_geom(row_body, f"{POLE_GEOM_PREFIX}{row}_c{column}", _POLE_RGBA)
            geom.type = mujoco.mjtGeom.mjGEOM_CYLINDER
            geom.pos = np.array((0.0, y, POLE_HALF_HEIGHT))
            geom.size = np.array((POLE_RADIUS, POLE_HALF_HEIGHT, 0.0))


def _add_ramp_course(spec: mujoco.MjSpec) -> None:
    mesh = spec.add_mesh()
    mesh.name = "slide"
    mesh.uservert = RAMP_VERTICES.ravel()
    slides = spec.worldbody.add_body()
    slides.name = "slides"
    for index in range(RAMP_COUNT):
        geom = _static_geom(slides, f"slide_{index}", _RAMP_RGBA)
        geom.type = mujoco.mjtGeom.mjGEOM_MESH
        geom.meshname = "slide"
        geom.pos = np.array((index * RAMP_SPACING, 0.0, 0.0))
    for name, centre, half_size in RAMP_WALLS:
        _add_box(spec.worldbody, name, centre, half_size, _BARRIER_RGBA)


_BUILDERS: dict[str, Callable[[mujoco.MjSpec], None]] = {
    "flat": lambda spec: None,
    "poles": _add_pole_forest,
    "slides": _add_ramp_course,
}


def add_arena(spec: mujoco.MjSpec, arena: str) -> None:
    """Add the static objects of ``arena`` to ``spec`` (the ground plane is already there)."""
    try:
        builder = _BUILDERS[arena]
    except KeyError:
        raise ValueError(f"unknown arena {arena!r}; valid: {', '.join(ARENAS)}") from None
    builder(spec)
