"""CartPole, MountainCar and Acrobot with the dynamics of Gymnasium's `CartPole-v1`,
`MountainCar-v0` and `Acrobot-v1`, step for step (the same formulas in the same order).

Computations use the dtype of the state: float32 by default, float64 when JAX runs with
`jax_enable_x64` (then they agree with Gymnasium's float64 NumPy code to rounding error).
Observations are always float32. Time limits are Gymnasium's: 500, 200 and 500 steps.
Actions are int scalars (see `envs.base`): CartPole 0 push left / 1 push right; MountainCar
and Acrobot 0 / 1 / 2 for force or torque -1 / 0 / +1.
"""

import functools
import math
from typing import Any, NamedTuple

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

from envs import base

Array = jax.Array


def _float_dtype():
    """float32, or float64 under `jax_enable_x64` (the default float of `jax.random.uniform`)."""
    return jnp.result_type(float)


class _GymnasiumRenderer:
    """Renders a state with Gymnasium's own classic-control drawing code (host side)."""

    def __init__(self, env_cls: type, set_state):
        self._env_cls = env_cls
        self._set_state = set_state
        self._env = None

    def __call__(self, env_state: Any, params: Any) -> np.ndarray:
        if self._env is None:
            self._env = self._env_cls(render_mode="rgb_array")
        self._set_state(self._env, jax.device_get(env_state), params)
        return self._env.render()

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None


# ---------------------------------------------------------------------------------------------
# CartPole
# ---------------------------------------------------------------------------------------------


class CartPoleParams(NamedTuple):
    """CartPole-v1 constants (Gymnasium's names and values)."""

    gravity: float = 9.8
    masscart: float = 1.0
    masspole: float = 0.1
    length: float = 0.5  # half the pole's length
    force_mag: float = 10.0
    tau: float = 0.02
    theta_threshold_radians: float = 12 * 2 * math.pi / 360
    x_threshold: float = 2.4
    reset_bound: float = 0.05  # initial state ~ U(-reset_bound, reset_bound)^4
    sutton_barto_reward: bool = False  # 0 per step and -1 on termination instead of +1
    max_steps: int = 500


class CartPoleState(NamedTuple):
    """Cart position and velocity, pole angle and angular velocity, each `[]`."""

    x: Array
    x_dot: Array
    theta: Array
    theta_dot: Array


def _cartpole_terminated(s: CartPoleState, params: CartPoleParams) -> Array:
    return ((s.x < -params.x_threshold) | (s.x > params.x_threshold)
            | (s.theta < -params.theta_threshold_radians)
            | (s.theta > params.theta_threshold_radians))


def _cartpole_obs(s: CartPoleState) -> Array:
    return jnp.stack([s.x, s.x_dot, s.theta, s.theta_dot]).astype(jnp.float32)


def _cartpole_reset(key, params: CartPoleParams):
    u = jax.random.uniform(key, (4,), _float_dtype(), -params.reset_bound, params.reset_bound)
    s = CartPoleState(u[0], u[1], u[2], u[3])
    return _cartpole_obs(s), s


def _cartpole_step(key, s: CartPoleState, action, params: CartPoleParams):
    del key  # deterministic dynamics
    action = base.discrete_action("CartPole.step", action, 2)
    total_mass = params.masspole + params.masscart
    polemass_length = params.masspole * params.length
    force = jnp.where(action == 1, params.force_mag, -params.force_mag)
    costheta = jnp.cos(s.theta)
    sintheta = jnp.sin(s.theta)
    temp = (force + polemass_length * jnp.square(s.theta_dot) * sintheta) / total_mass
    thetaacc = (params.gravity * sintheta - costheta * temp) / (
        params.length * (4.0 / 3.0 - params.masspole * jnp.square(costheta) / total_mass))
    xacc = temp - polemass_length * thetaacc * costheta / total_mass
    new = CartPoleState(
        x=s.x + params.tau * s.x_dot,
        x_dot=s.x_dot + params.tau * xacc,
        theta=s.theta + params.tau * s.theta_dot,
        theta_dot=s.theta_dot + params.tau * thetaacc,
    )
    new = jax.tree.map(lambda v, old: v.astype(old.dtype), new, s)
    terminated = _cartpole_terminated(new, params)
    reward = jnp.where(
        params.sutton_barto_reward, jnp.where(terminated, -1.0, 0.0), 1.0).astype(jnp.float32)
    return _cartpole_obs(new), new, reward, terminated, {}


def _set_cartpole(env, s: CartPoleState, params: CartPoleParams) -> None:
    env.x_threshold = float(params.x_threshold)
    env.length = float(params.length)
    env.state = np.array([s.x, s.x_dot, s.theta, s.theta_dot], np.float64)


def CartPole(**params: Any) -> base.Environment:  # noqa: N802 (a constructor)
    """CartPole-v1: balance a pole on a cart; +1 per step; truncated at 500 steps.

    Observation float32 `[4]`: (x, x_dot, theta, theta_dot). Actions: 0 left, 1 right.

    Args:
      **params: overrides of `CartPoleParams` fields (e.g. `gravity=9.8`, `max_steps=500`).

    Returns:
      The `Environment`; `env.default_params` is a `CartPoleParams`.
    """
    p = CartPoleParams(**params)
    _check_positive("CartPole", p, "masscart", "masspole", "length", "tau",
                    "theta_threshold_radians", "x_threshold", "max_steps")
    base.check_param("CartPole", "reset_bound", p.reset_bound >= 0, ">= 0", p.reset_bound)
    high = np.array([p.x_threshold * 2, np.inf, p.theta_threshold_radians * 2, np.inf],
                    np.float32)
    from gymnasium.envs.classic_control.cartpole import CartPoleEnv

    return base.make_environment(
        "CartPole-v1", base.Core(_cartpole_reset, _cartpole_step, step_uses_key=False), p,
        gymnasium.spaces.Box(-high, high, dtype=np.float32), gymnasium.spaces.Discrete(2),
        extras={}, render=_GymnasiumRenderer(CartPoleEnv, _set_cartpole), render_fps=50)


# ---------------------------------------------------------------------------------------------
# MountainCar
# ---------------------------------------------------------------------------------------------


class MountainCarParams(NamedTuple):
    """MountainCar-v0 constants (Gymnasium's names and values)."""

    min_position: float = -1.2
    max_position: float = 0.6
    max_speed: float = 0.07
    goal_position: float = 0.5
    goal_velocity: float = 0.0
    force: float = 0.001
    gravity: float = 0.0025
    reset_low: float = -0.6  # initial position ~ U(reset_low, reset_high), velocity 0
    reset_high: float = -0.4
    max_steps: int = 200


class MountainCarState(NamedTuple):
    """Car position and velocity, each `[]`."""

    position: Array
    velocity: Array


def _mountain_car_obs(s: MountainCarState) -> Array:
    return jnp.stack([s.position, s.velocity]).astype(jnp.float32)


def _mountain_car_reset(key, params: MountainCarParams):
    position = jax.random.uniform(key, (), _float_dtype(), params.reset_low, params.reset_high)
    s = MountainCarState(position, jnp.zeros_like(position))
    return _mountain_car_obs(s), s


def _mountain_car_step(key, s: MountainCarState, action, params: MountainCarParams):
    del key  # deterministic dynamics
    action = base.discrete_action("MountainCar.step", action, 3)
    dtype = s.position.dtype
    velocity = s.velocity + ((action - 1).astype(dtype) * params.force
                             + jnp.cos(3 * s.position) * (-params.gravity))
    velocity = jnp.clip(velocity, -params.max_speed, params.max_speed)
    position = jnp.clip(s.position + velocity, params.min_position, params.max_position)
    velocity = jnp.where((position == params.min_position) & (velocity < 0), 0.0, velocity)
    new = MountainCarState(position.astype(dtype), velocity.astype(dtype))
    terminated = (new.position >= params.goal_position) & (new.velocity >= params.goal_velocity)
    return _mountain_car_obs(new), new, jnp.float32(-1.0), terminated, {}


def _set_mountain_car(env, s: MountainCarState, params: MountainCarParams) -> None:
    env.goal_position = float(params.goal_position)
    env.state = np.array([s.position, s.velocity], np.float64)


def MountainCar(**params: Any) -> base.Environment:  # noqa: N802 (a constructor)
    """MountainCar-v0 (Sutton & Barto Example 10.1 dynamics): -1 per step; truncated at 200.

    Observation float32 `[2]`: (position, velocity). Actions: 0 / 1 / 2 = push -1 / 0 / +1.

    Args:
      **params: overrides of `MountainCarParams` fields.

    Returns:
      The `Environment`; `env.default_params` is a `MountainCarParams`.
    """
    p = MountainCarParams(**params)
    _check_positive("MountainCar", p, "max_speed", "force", "max_steps")
    base.check_param("MountainCar", "max_position", p.max_position > p.min_position,
                     "> min_position", p.max_position)
    base.check_param("MountainCar", "reset_high",
                     p.min_position <= p.reset_low <= p.reset_high <= p.max_position,
                     "within [reset_low, max_position] with reset_low >= min_position",
                     p.reset_high)
    low = np.array([p.min_position, -p.max_speed], np.float32)
    high = np.array([p.max_position, p.max_speed], np.float32)
    from gymnasium.envs.classic_control.mountain_car import MountainCarEnv

    return base.make_environment(
        "MountainCar-v0", base.Core(_mountain_car_reset, _mountain_car_step,
                  step_uses_key=False), p,
        gymnasium.spaces.Box(low, high, dtype=np.float32), gymnasium.spaces.Discrete(3),
        extras={}, render=_GymnasiumRenderer(MountainCarEnv, _set_mountain_car),
        render_fps=30)


# ---------------------------------------------------------------------------------------------
# Acrobot
# ---------------------------------------------------------------------------------------------


class AcrobotParams(NamedTuple):
    """Acrobot-v1 constants (Gymnasium's values; the "book" dynamics, RK4 with one step)."""

    dt: float = 0.2
    link_length_1: float = 1.0
    link_mass_1: float = 1.0
    link_mass_2: float = 1.0
    link_com_pos_1: float = 0.5
    link_com_pos_2: float = 0.5
    link_moi: float = 1.0
    max_vel_1: float = 4 * math.pi
    max_vel_2: float = 9 * math.pi
    reset_bound: float = 0.1  # initial state ~ U(-reset_bound, reset_bound)^4
    max_steps: int = 500


class AcrobotState(NamedTuple):
    """Joint angles and angular velocities, each `[]`."""

    theta1: Array
    theta2: Array
    dtheta1: Array
    dtheta2: Array


def _acrobot_obs(s: AcrobotState) -> Array:
    return jnp.stack([jnp.cos(s.theta1), jnp.sin(s.theta1), jnp.cos(s.theta2),
                      jnp.sin(s.theta2), s.dtheta1, s.dtheta2]).astype(jnp.float32)


def _acrobot_reset(key, params: AcrobotParams):
    u = jax.random.uniform(key, (4,), _float_dtype(), -params.reset_bound, params.reset_bound)
    s = AcrobotState(u[0], u[1], u[2], u[3])
    return _acrobot_obs(s), s


def _acrobot_dsdt(y: Array, torque: Array, params: AcrobotParams) -> Array:
    """Gymnasium's `AcrobotEnv._dsdt` ("book" dynamics) for y = (theta1, theta2, dth1, dth2)."""
    m1, m2 = params.link_mass_1, params.link_mass_2
    l1 = params.link_length_1
    lc1, lc2 = params.link_com_pos_1, params.link_com_pos_2
    i1 = i2 = params.link_moi
    g = 9.8
    theta1, theta2, dtheta1, dtheta2 = y[0], y[1], y[2], y[3]
    d1 = m1 * lc1**2 + m2 * (l1**2 + lc2**2 + 2 * l1 * lc2 * jnp.cos(theta2)) + i1 + i2
    d2 = m2 * (lc2**2 + l1 * lc2 * jnp.cos(theta2)) + i2
    phi2 = m2 * lc2 * g * jnp.cos(theta1 + theta2 - math.pi / 2.0)
    phi1 = (
        -m2 * l1 * lc2 * dtheta2**2 * jnp.sin(theta2)
        - 2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * jnp.sin(theta2)
        + (m1 * lc1 + m2 * l1) * g * jnp.cos(theta1 - math.pi / 2)
        + phi2
    )
    ddtheta2 = (torque + d2 / d1 * phi1 - m2 * l1 * lc2 * dtheta1**2 * jnp.sin(theta2)
                - phi2) / (m2 * lc2**2 + i2 - d2**2 / d1)
    ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
    return jnp.stack([dtheta1, dtheta2, ddtheta1, ddtheta2])


def _wrap(x: Array, low: float, high: float) -> Array:
    """Gymnasium's `wrap`: add or subtract `high - low` until `low <= x <= high`."""
    diff = high - low
    x = jnp.where(x > high, x - diff * jnp.ceil((x - high) / diff), x)
    return jnp.where(x < low, x + diff * jnp.ceil((low - x) / diff), x)


def _acrobot_step(key, s: AcrobotState, action, params: AcrobotParams,
                  torque_noise_max: float = 0.0):
    action = base.discrete_action("Acrobot.step", action, 3)
    dtype = s.theta1.dtype
    torque = (action - 1).astype(dtype)
    if torque_noise_max > 0:
        torque = torque + jax.random.uniform(key, (), dtype, -torque_noise_max, torque_noise_max)
    y0 = jnp.stack(list(s))
    dt = params.dt
    dt2 = dt / 2.0
    k1 = _acrobot_dsdt(y0, torque, params)
    k2 = _acrobot_dsdt(y0 + dt2 * k1, torque, params)
    k3 = _acrobot_dsdt(y0 + dt2 * k2, torque, params)
    k4 = _acrobot_dsdt(y0 + dt * k3, torque, params)
    y = (y0 + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)).astype(dtype)
    new = AcrobotState(
        theta1=_wrap(y[0], -math.pi, math.pi),
        theta2=_wrap(y[1], -math.pi, math.pi),
        dtheta1=jnp.clip(y[2], -params.max_vel_1, params.max_vel_1),
        dtheta2=jnp.clip(y[3], -params.max_vel_2, params.max_vel_2),
    )
    terminated = -jnp.cos(new.theta1) - jnp.cos(new.theta2 + new.theta1) > 1.0
    reward = jnp.where(terminated, 0.0, -1.0).astype(jnp.float32)
    return _acrobot_obs(new), new, reward, terminated, {}


def _set_acrobot(env, s: AcrobotState, params: AcrobotParams) -> None:
    env.state = np.array([s.theta1, s.theta2, s.dtheta1, s.dtheta2], np.float64)


def Acrobot(torque_noise_max: float = 0.0, **params: Any) -> base.Environment:  # noqa: N802
    """Acrobot-v1: swing the tip above the bar; -1 per step (0 on success); truncated at 500.

    Observation float32 `[6]`: (cos th1, sin th1, cos th2, sin th2, dth1, dth2). Actions:
    0 / 1 / 2 = torque -1 / 0 / +1. RK4 with one step of `dt`, as Gymnasium.

    Args:
      torque_noise_max: static; when > 0 the torque gets U(-torque_noise_max,
        torque_noise_max) noise (Gymnasium's class attribute, 0 in Acrobot-v1). Static so
        that the noiseless default draws no random numbers per step.
      **params: overrides of `AcrobotParams` fields.

    Returns:
      The `Environment`; `env.default_params` is an `AcrobotParams`.
    """
    p = AcrobotParams(**params)
    _check_positive("Acrobot", p, "dt", "link_length_1", "link_mass_1", "link_mass_2",
                    "link_moi", "max_vel_1", "max_vel_2", "max_steps")
    base.check_param("Acrobot", "torque_noise_max", torque_noise_max >= 0, ">= 0",
                     torque_noise_max)
    step = functools.partial(_acrobot_step, torque_noise_max=float(torque_noise_max))
    high = np.array([1.0, 1.0, 1.0, 1.0, p.max_vel_1, p.max_vel_2], np.float32)
    from gymnasium.envs.classic_control.acrobot import AcrobotEnv

    return base.make_environment(
        "Acrobot-v1", base.Core(_acrobot_reset, step, step_uses_key=torque_noise_max > 0), p,
        gymnasium.spaces.Box(-high, high, dtype=np.float32), gymnasium.spaces.Discrete(3),
        extras={}, render=_GymnasiumRenderer(AcrobotEnv, _set_acrobot), render_fps=15)


def _check_positive(name: str, params: NamedTuple, *fields: str) -> None:
    for field in fields:
        value = getattr(params, field)
        base.check_param(name, field, np.all(np.asarray(value) > 0), "> 0", value)
