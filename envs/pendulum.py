"""Pendulum with the dynamics of Gymnasium's `Pendulum-v1`, step for step (the same formulas
in the same order), and a continuous action: the torque, float32 `[1]`.

Computations use the dtype of the state: float32 by default, float64 when JAX runs with
`jax_enable_x64` (then they agree with Gymnasium's float64 NumPy code to rounding error).
Observations are always float32. The action is clipped into `[-max_torque, max_torque]` as
Gymnasium does; it is not rescaled (an agent whose policy outputs `[-1, 1]` rescales itself).
The episode never terminates; it is truncated at 200 steps.
"""

import math
from typing import Any, NamedTuple

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

from envs import base
from envs.classic_control import _check_positive, _float_dtype, _GymnasiumRenderer

Array = jax.Array


class PendulumParams(NamedTuple):
    """Pendulum-v1 constants (Gymnasium's names and values)."""

    max_speed: float = 8.0
    max_torque: float = 2.0
    dt: float = 0.05
    g: float = 10.0
    m: float = 1.0
    l: float = 1.0
    reset_theta: float = math.pi  # theta ~ U(-reset_theta, reset_theta) (Gymnasium's x_init)
    reset_theta_dot: float = 1.0  # theta_dot ~ U(-reset_theta_dot, ...) (Gymnasium's y_init)
    max_steps: int = 200


class PendulumState(NamedTuple):
    """Angle (0 upright, not wrapped) and angular velocity, each `[]`."""

    theta: Array
    theta_dot: Array


def angle_normalize(x: Array) -> Array:
    """Gymnasium's `angle_normalize`: `x` wrapped into `[-pi, pi)`."""
    return ((x + math.pi) % (2 * math.pi)) - math.pi


def _pendulum_obs(s: PendulumState) -> Array:
    return jnp.stack([jnp.cos(s.theta), jnp.sin(s.theta), s.theta_dot]).astype(jnp.float32)


def _pendulum_reset(key, params: PendulumParams):
    dtype = _float_dtype()
    high = jnp.stack([jnp.asarray(params.reset_theta, dtype),
                      jnp.asarray(params.reset_theta_dot, dtype)])
    u = jax.random.uniform(key, (2,), dtype, -high, high)
    s = PendulumState(u[0], u[1])
    return _pendulum_obs(s), s


def _pendulum_step(key, s: PendulumState, action, params: PendulumParams):
    del key  # deterministic dynamics
    # The torque stays float32 as in Gymnasium (a float32 action, clipped by NumPy), so that
    # `0.001 * u**2` is rounded the same way; the rest is computed in the state's dtype.
    u = base.box_action("Pendulum.step", action, (1,))
    u = jnp.clip(u, -params.max_torque, params.max_torque)[0]
    th, thdot = s.theta, s.theta_dot
    g, m, l, dt = params.g, params.m, params.l, params.dt
    costs = angle_normalize(th) ** 2 + 0.1 * thdot**2 + 0.001 * (u**2)
    newthdot = thdot + (3 * g / (2 * l) * jnp.sin(th) + 3.0 / (m * l**2) * u) * dt
    newthdot = jnp.clip(newthdot, -params.max_speed, params.max_speed)
    newth = th + newthdot * dt
    new = PendulumState(newth.astype(th.dtype), newthdot.astype(thdot.dtype))
    return (_pendulum_obs(new), new, (-costs).astype(jnp.float32),
            jnp.zeros((), jnp.bool_), {})


def _set_pendulum(env, s: PendulumState, params: PendulumParams) -> None:
    env.state = np.array([s.theta, s.theta_dot], np.float64)
    env.last_u = None  # the torque arrow is not drawn (the state does not hold the last action)


def Pendulum(**params: Any) -> base.Environment:  # noqa: N802 (a constructor)
    """Pendulum-v1: swing a pendulum up and hold it upright; truncated at 200 steps.

    Reward `-(angle_normalize(theta)^2 + 0.1 theta_dot^2 + 0.001 u^2)`, in
    `[-16.2736044, 0]`; never terminates.

    Observation float32 `[3]`: (cos theta, sin theta, theta_dot). Action float32 `[1]`: the
    torque `u`, `Box(-2, 2, (1,))`, clipped into `[-max_torque, max_torque]`.

    Args:
      **params: overrides of `PendulumParams` fields (e.g. `g=9.81`, `max_steps=500`).

    Returns:
      The `Environment`; `env.default_params` is a `PendulumParams`.
    """
    p = PendulumParams(**params)
    _check_positive("Pendulum", p, "max_speed", "max_torque", "dt", "m", "l", "max_steps")
    for field in ("reset_theta", "reset_theta_dot"):
        value = getattr(p, field)
        base.check_param("Pendulum", field, np.all(np.asarray(value) >= 0), ">= 0", value)
    high = np.array([1.0, 1.0, p.max_speed], np.float32)
    from gymnasium.envs.classic_control.pendulum import PendulumEnv

    return base.make_environment(
        "Pendulum-v1", base.Core(_pendulum_reset, _pendulum_step, step_uses_key=False), p,
        gymnasium.spaces.Box(-high, high, dtype=np.float32),
        gymnasium.spaces.Box(-p.max_torque, p.max_torque, (1,), np.float32),
        extras={}, render=_GymnasiumRenderer(PendulumEnv, _set_pendulum), render_fps=30)
