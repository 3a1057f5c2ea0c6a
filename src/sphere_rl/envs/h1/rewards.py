"""Reward terms shared by the H1 tasks, each a score in [0, 1] built from :func:`tolerance`.

The constants are HumanoidBench's (``basic_locomotion_envs.py`` and ``pole.py``); the tasks in
:mod:`sphere_rl.envs.h1.tasks` multiply or average these terms.
"""

from __future__ import annotations

import numpy as np

from sphere_rl.envs.h1.tolerance import tolerance

INF = float("inf")

# Head height (m) from which ``standing`` is 1; the score is 0.1 a quarter of that lower.
STAND_HEIGHT = 1.65
# Torso-upright (cos of the torso tilt) from which ``upright`` is 1, and the linear ramp width:
# 1.9 makes the score reach 0 only for a torso turned fully upside down (upright = −1).
UPRIGHT_BOUND = 0.9
UPRIGHT_MARGIN = 1.9
# Actuator force (N or N·m) at which a joint's small-control score has fallen to 0.
CONTROL_FORCE_MARGIN = 10.0
# Horizontal centre-of-mass speed (m/s) at which "don't move" has fallen to 0.1.
STILL_SPEED_MARGIN = 2.0
# Slide: head height above each foot (m) from which standing is 1, and its margin.
HEAD_ABOVE_FOOT = 1.2
HEAD_ABOVE_FOOT_MARGIN = 0.45
# Pole: reward factor while any pole touches the robot.
POLE_COLLISION_DISCOUNT = 0.1


def standing(head_height: float) -> float:
    """1 when the head is at least :data:`STAND_HEIGHT` above the ground, gaussian decay below."""
    return tolerance(head_height, bounds=(STAND_HEIGHT, INF), margin=STAND_HEIGHT / 4)


def standing_above_feet(head_height: float, left_foot: float, right_foot: float) -> float:
    """Slide's standing score: head well above *both* feet, so slopes do not penalise standing."""
    bounds = (HEAD_ABOVE_FOOT, INF)
    left = tolerance(head_height - left_foot, bounds=bounds, margin=HEAD_ABOVE_FOOT_MARGIN)
    right = tolerance(head_height - right_foot, bounds=bounds, margin=HEAD_ABOVE_FOOT_MARGIN)
    return left * right


def upright(torso_upright: float, bound: float = UPRIGHT_BOUND) -> float:
    """1 when the torso's z axis has world-z component ≥ ``bound``; linear to 0 at upside down."""
    return tolerance(
        torso_upright,
        bounds=(bound, INF),
        sigmoid="linear",
        margin=UPRIGHT_MARGIN,
        value_at_margin=0.0,
    )


def small_control(actuator_force: np.ndarray) -> float:
    """Mildly rewards low actuator effort: in [0.8, 1], 1 only when every force is zero."""
    per_joint = tolerance(
        actuator_force, margin=CONTROL_FORCE_MARGIN, sigmoid="quadratic", value_at_margin=0.0
    )
    # sum/size rather than mean(): numpy's mean has several microseconds of Python overhead.
    return (4.0 + float(per_joint.sum()) / per_joint.size) / 5.0


def move(forward_speed: float, target_speed: float) -> float:
    """Forward-progress score in [1/6, 1]: linear in the x speed of the centre of mass, 1 from
    ``target_speed`` up; the 1/6 floor keeps standing still worth something."""
    progress = tolerance(
        forward_speed,
        bounds=(target_speed, INF),
        margin=target_speed,
        sigmoid="linear",
        value_at_margin=0.0,
    )
    return (5.0 * progress + 1.0) / 6.0


def dont_move(velocity_x: float, velocity_y: float) -> float:
    """Stand's stillness score: mean gaussian score of the x and y centre-of-mass speeds."""
    x_score = tolerance(velocity_x, margin=STILL_SPEED_MARGIN)
    y_score = tolerance(velocity_y, margin=STILL_SPEED_MARGIN)
    return 0.5 * (x_score + y_score)


def collision_discount(touching_pole: bool) -> float:
    """Pole's multiplicative penalty: :data:`POLE_COLLISION_DISCOUNT` while touching a pole."""
    return POLE_COLLISION_DISCOUNT if touching_pole else 1.0
