"""The five HumanoidBench H1 tasks as compact, frozen specifications plus their reward rules.

A task is data (:class:`H1TaskSpec`): which arena, which reward rule, the target speed, the
termination rule and the success bar. The three reward rules below combine the terms of
:mod:`sphere_rl.envs.h1.rewards` exactly as HumanoidBench does for stand/walk/run, pole and slide.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from sphere_rl.envs.h1 import rewards
from sphere_rl.envs.h1.readout import H1Readout

RewardInfo = dict[str, float]
RewardFn = Callable[["H1TaskSpec", H1Readout], tuple[float, RewardInfo]]


@dataclass(frozen=True)
class H1TaskSpec:
    """Everything that distinguishes one H1 task from another.

    Attributes:
        name: registry name, e.g. ``"h1-walk"``.
        arena: static scenery, see :data:`sphere_rl.envs.h1.arenas.ARENAS`.
        reward: reward rule, a key of :data:`REWARD_RULES`.
        move_speed: target forward speed of the centre of mass (m/s); 0 means "stand still".
        success_bar: an episode succeeds when its undiscounted return reaches this value.
        terminate_on: quantity checked for early termination, a key of :data:`TERMINATION_QUANTITIES`.
        terminate_below: the episode terminates when that quantity drops below this value.
        upright_bound: torso-upright value from which the ``upright`` term is 1.
        max_episode_steps: truncation horizon in control steps (50 Hz).
    """

    name: str
    arena: str
    reward: str
    move_speed: float
    success_bar: float
    terminate_on: str
    terminate_below: float
    upright_bound: float = rewards.UPRIGHT_BOUND
    max_episode_steps: int = 1000

    def __post_init__(self) -> None:
        if self.reward not in REWARD_RULES:
            raise ValueError(f"unknown reward rule {self.reward!r}; valid: {sorted(REWARD_RULES)}")
        if self.terminate_on not in TERMINATION_QUANTITIES:
            raise ValueError(
                f"unknown termination quantity {self.terminate_on!r}; "
                f"valid: {sorted(TERMINATION_QUANTITIES)}"
            )

    @property
    def termination(self) -> str:
        """Human-readable termination rule."""
        what = {"pelvis_height": "pelvis height qpos[2] (m)", "torso_upright": "torso upright"}
        return f"terminates when {what[self.terminate_on]} < {self.terminate_below}"

    def is_success(self, episode_return: float) -> bool:
        """Success criterion: return so far at or above :attr:`success_bar`."""
        return episode_return >= self.success_bar

    def compute_reward(self, readout: H1Readout) -> tuple[float, RewardInfo]:
        """Reward of the current state and its named components."""
        return REWARD_RULES[self.reward](self, readout)

    def is_terminated(self, readout: H1Readout) -> bool:
        """Whether the current state ends the episode."""
        return TERMINATION_QUANTITIES[self.terminate_on](readout) < self.terminate_below


def _locomotion_reward(spec: H1TaskSpec, r: H1Readout) -> tuple[float, RewardInfo]:
    """stand/walk/run: small_control · standing · upright · (dont_move or move)."""
    standing = rewards.standing(r.head_height())
    upright = rewards.upright(r.torso_upright(), spec.upright_bound)
    small_control = rewards.small_control(r.actuator_force())
    stand_reward = standing * upright
    info = {
        "standing": standing,
        "upright": upright,
        "stand_reward": stand_reward,
        "small_control": small_control,
    }
    if spec.move_speed == 0:
        info["dont_move"] = still = rewards.dont_move(*r.com_horizontal_velocity())
        return small_control * stand_reward * still, info
    info["move"] = move = rewards.move(r.com_forward_speed(), spec.move_speed)
    return small_control * stand_reward * move, info


def _pole_reward(spec: H1TaskSpec, r: H1Readout) -> tuple[float, RewardInfo]:
    """pole: half posture, half progress, all scaled down while any pole touches the robot."""
    standing = rewards.standing(r.head_height())
    upright = rewards.upright(r.torso_upright(), spec.upright_bound)
    small_control = rewards.small_control(r.actuator_force())
    move = rewards.move(r.com_forward_speed(), spec.move_speed)
    discount = rewards.collision_discount(r.touching_pole())
    stand_reward = standing * upright
    reward = (0.5 * small_control * stand_reward + 0.5 * move) * discount
    return reward, {
        "standing": standing,
        "upright": upright,
        "stand_reward": stand_reward,
        "small_control": small_control,
        "move": move,
        "collision_discount": discount,
    }


def _slide_reward(spec: H1TaskSpec, r: H1Readout) -> tuple[float, RewardInfo]:
    """slide: like walk, but standing is measured as head height above each foot."""
    standing = rewards.standing_above_feet(r.head_height(), *r.foot_heights())
    upright = rewards.upright(r.torso_upright(), spec.upright_bound)
    small_control = rewards.small_control(r.actuator_force())
    move = rewards.move(r.com_forward_speed(), spec.move_speed)
    stand_reward = standing * upright
    return stand_reward * small_control * move, {
        "standing": standing,
        "upright": upright,
        "stand_reward": stand_reward,
        "small_control": small_control,
        "move": move,
    }


REWARD_RULES: Mapping[str, RewardFn] = MappingProxyType(
    {"locomotion": _locomotion_reward, "pole": _pole_reward, "slide": _slide_reward}
)
TERMINATION_QUANTITIES: Mapping[str, Callable[[H1Readout], float]] = MappingProxyType(
    {"pelvis_height": H1Readout.pelvis_height, "torso_upright": H1Readout.torso_upright}
)

# Target speeds: HumanoidBench's walk 1 m/s, run 5 m/s, pole 0.5 m/s, slide 1 m/s.
H1_TASKS: Mapping[str, H1TaskSpec] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            H1TaskSpec("h1-stand", "flat", "locomotion", 0.0, 800.0, "pelvis_height", 0.2),
            H1TaskSpec("h1-walk", "flat", "locomotion", 1.0, 700.0, "pelvis_height", 0.2),
            H1TaskSpec("h1-run", "flat", "locomotion", 5.0, 700.0, "pelvis_height", 0.2),
            H1TaskSpec("h1-pole", "poles", "pole", 0.5, 700.0, "pelvis_height", 0.5),
            H1TaskSpec(
                "h1-slide", "slides", "slide", 1.0, 700.0, "torso_upright", 0.1, upright_bound=0.5
            ),
        )
    }
)


def get_task(name: str) -> H1TaskSpec:
    """Look up a task by name; unknown names raise ``ValueError`` listing the valid ones."""
    try:
        return H1_TASKS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown H1 task {name!r}; valid: {', '.join(H1_TASKS)}") from None
