"""Experience for the prediction experiments: streams of episodes, and predictors swept over them.

    data = sample_streams(env, params, keys, num_steps, episodes=10)   # R runs, traceable
    streams = feature_streams(data, num_states)                         # prediction.Stream [R]
    errors = sweep_predictor(predictor, w0, [("alpha", alphas)], streams, rms, 10)

Episodes of one run are sampled back to back (automatic reset) as one stream and processed
in order by a `prediction.Predictor`; `fused_streams` puts sampling and the whole sweep in
ONE jitted program and doubles the stream length until every run has its episodes.
"""

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import envs
from agents.textbook import prediction
from envs import base as env_base

Array = jax.Array


def sample_streams(env: env_base.Environment, params: Any, keys: Array, num_steps: int,
                   episodes: int | None = None, actions: Callable | None = None) -> dict:
    """Experience of R independent runs, episodes back to back (traceable; jit it).

    Steps the environment (automatic reset) `num_steps` times per run with the behaviour
    policy `actions`, one key per step from `fold_in(key, t)`, so a longer stream starts with
    exactly the same experience.

    Args:
      env: a tdkit environment without time limit (episodes end by termination).
      params: its params.
      keys: PRNG keys `[R]`, one per run.
      num_steps: `L`, a Python int.
      episodes: record the ends of the first `E` episodes (None: record every step).
      actions: behaviour policy `actions(key) -> (action int [], rho float [])`; default
        action 0 with `rho = 1` (reward processes).

    Returns:
      dict with leading `[R]`: `obs [R, L + 1, O...]`, `r_t`, `terminated`, `action`,
      `rho_tm1`, `record` (bool) `[R, L]`, and `episodes` `[R]`, the episodes finished.
    """
    def one_run(key):
        k_reset, k_steps = jax.random.split(key)
        obs0, state = env.reset(k_reset, params)

        def body(carry, key_t):
            obs, state = carry
            k_act, k_env = jax.random.split(key_t)
            if actions is None:
                action, rho = jnp.int32(0), jnp.float32(1.0)
            else:
                action, rho = actions(k_act)
            obs, state, reward, terminated, _, _ = env.step(k_env, state, action, params)
            return (obs, state), (obs, reward, terminated, action, rho)

        step_keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(
            k_steps, jnp.arange(num_steps))
        _, (obs, reward, terminated, action, rho) = jax.lax.scan(
            body, (obs0, state), step_keys)
        return jnp.concatenate([obs0[None], obs]), reward, terminated, action, rho

    obs, reward, terminated, action, rho = jax.vmap(one_run)(keys)
    done = jnp.cumsum(terminated, axis=1)
    record = (jnp.ones_like(terminated) if episodes is None
              else terminated & (done <= episodes))
    return {"obs": obs, "r_t": reward, "terminated": terminated, "action": action,
            "rho_tm1": rho, "record": record, "episodes": done[:, -1]}


def fused_streams(env: env_base.Environment, params: Any, key: Array, runs: int,
                  episodes: int, compute: Callable[[dict], Any], num_steps: int) -> Any:
    """`compute(sample_streams(...))` in ONE jitted program (one compilation).

    The streams have `num_steps` steps; if some run has not finished `episodes` episodes
    the whole computation is repeated with twice as many steps (the same experience,
    extended). `compute` must only use the recorded steps (the first `episodes` episode
    ends) of each run.

    Returns:
      `compute`'s output (on the host).
    """
    @functools.partial(jax.jit, static_argnums=1)
    def run(key, num_steps):
        data = sample_streams(env, params, jax.random.split(key, runs), num_steps, episodes)
        return compute(data), data["episodes"].min()

    while True:
        out, finished = jax.device_get(run(key, num_steps))
        if finished >= episodes:
            return out
        num_steps *= 2


def feature_streams(data: Mapping[str, Array], num_states: int | None, gamma: float = 1.0):
    """`prediction.Stream` with one-hot features over the state indices (or, with
    `num_states=None`, the observations as features), leading `[R]` (traceable)."""
    if num_states is None:
        xs = jnp.asarray(data["obs"], jnp.float32)
    else:
        xs = jax.nn.one_hot(data["obs"], num_states, dtype=jnp.float32)
    discount = gamma * (1.0 - jnp.asarray(data["terminated"], jnp.float32))
    return prediction.Stream(xs, jnp.asarray(data["r_t"], jnp.float32), discount,
                             jnp.asarray(data["rho_tm1"], jnp.float32),
                             jnp.asarray(data["record"], jnp.bool_))


def sweep_predictor(predictor: prediction.Predictor, w0: Array,
                    axes: Sequence[tuple[str, Sequence[float]]], streams: prediction.Stream,
                    observe: Callable, num_records: int,
                    fixed: Mapping[str, float] | None = None) -> Array:
    """Runs `predictor` for every run (stream) and every setting of a grid.

    Traceable (call it inside `jax.jit`): a `vmap` over the runs' streams `[R, ...]` of
    nested `vmap`s over the grid axes, outermost first. Every setting of a run sees the same
    stream, and whatever does not depend on an inner axis (for instance the n-step windows
    or the lambda-returns' coefficients, which do not depend on `alpha`) is computed once
    per outer setting, not once per grid point.

    Args:
      predictor: a `prediction.Predictor`.
      w0: initial weights `[F]`.
      axes: `[(hparam name, values [K_i]), ...]`, the grid, outermost axis first.
      streams: a `prediction.Stream` with a leading `[R]` on every field.
      observe: `w [F] -> pytree` recorded at the flagged steps.
      num_records: `E`.
      fixed: hyperparameters shared by every setting.

    Returns:
      The recorded `observe(w)`, leading axes `[R, K_1, ..., K_m, E]`.
    """
    names = [name for name, _ in axes]

    def one_setting(stream, *values):
        state = predictor.init(w0, {**(fixed or {}), **dict(zip(names, values, strict=True))})
        _, records = predictor.run(state, stream, observe, num_records)
        return records

    fn = one_setting
    for i in reversed(range(len(axes))):
        in_axes = (None,) + tuple(0 if j == i else None for j in range(len(axes)))
        fn = jax.vmap(fn, in_axes=in_axes)
    grid_values = [jnp.asarray(v, jnp.float32) for _, v in axes]
    return jax.vmap(fn, in_axes=(0,) + (None,) * len(axes))(streams, *grid_values)


def random_walk_task(num_states: int):
    """The 5- or 19-state random walk (Example 6.2, Figure 7.2) for the prediction experiments.

    Returns:
      `(env, params, table, inner, rms)`: the environment and its params, the size `S` of
      the state index (terminal states included), the non-terminal states, and
      `rms(w [S]) -> []`, the RMS error of the values `w` against the true values averaged
      over the non-terminal states (NumPy for NumPy input, else traceable).
    """
    if num_states not in (5, 19):
        raise ValueError(f"random_walk_task: `num_states` must be 5 or 19, got {num_states!r}")
    env, params = envs.make("RandomWalk-v0" if num_states == 5 else "RandomWalk19-v0")
    table = int(env.extras["num_states"])
    inner = np.asarray(env.extras["nonterminal_states"])
    # NumPy constants: an eager JAX operation would compile a small program of its own.
    v_true = np.asarray(env.extras["true_values"], np.float32)
    mask = np.zeros(table, np.float32)
    mask[inner] = 1.0 / len(inner)

    def rms(w):  # a dot with the mask rather than a gather: cheaper inside the vmapped scans
        xp = np if isinstance(w, np.ndarray) else jnp
        return xp.sqrt(xp.dot((w - v_true) ** 2, mask))

    return env, params, table, inner, rms
