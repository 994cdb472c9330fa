"""The book's TD experiments as library code: one jitted, vmapped computation per experiment.

    result = run_experiment("figure-7.2", runs=100, seed=0)   # a JSON-ready dict
    print(format_table(result))
    save_result(result, "results/")                          # results/figure-7.2.{json,png}

A result is `{"experiment": str, "runs": int, "seconds": float, "series": [...]}`; each
series is `{"label": str, "params": {...}, "x": [...], "y": [...]}` where `params` holds the
swept values under the keys `n`, `lambda`, `alpha`, `method` and, for the Baird and Boyan
figures, `quantity` ("w1".."w8", "VE", "PBE", "rmse"); `x` is what the book's x axis shows
(alpha, episodes, time steps, sweeps) and `y` what its y axis shows (averaged over runs).
Non-finite values (a diverged setting) are written as `null`. `seconds` is the wall time of
the computation including compilation.

Every sweep over runs and parameters is ONE `jax.jit` of nested `jax.vmap`s: over runs (each
run its own experience, shared by every parameter setting where the book says so) and over
the numeric parameters (`alpha`, `lambda`, `n` are traced values, never recompiled). Episodes
of one run are processed back to back as a stream (`agents.prediction.Stream`) or, for
control, with a `lax.while_loop` that stops when every run has its episodes.

The setups and published values are those of Sutton & Barto (2018) as summarised in
`shared/reference/sutton_barto.md`; each experiment's `summary` puts the measured values
next to the book's (`format_table`). Default run counts are the book's.
"""

import functools
import json
import math
import pathlib
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

import envs
from agents import jax_loop, linear, prediction, tabular
from agents.base import Agent
from envs import base as env_base
from tdkit import dp, gradient_td, policies
from tdkit.types import Transition

Array = jax.Array


# ----------------------------------------------------------------------------------------
# Results.
# ----------------------------------------------------------------------------------------


def _floats(values: Any) -> list:
    """A flat list of Python floats, non-finite values as None (valid JSON)."""
    out = []
    for v in np.asarray(values, np.float64).reshape(-1).tolist():
        out.append(v if math.isfinite(v) else None)
    return out


PARAM_KEYS = ("n", "lambda", "alpha", "method", "quantity")
"""The keys a series' `params` may hold (the swept values)."""


def make_series(label: str, params: Mapping[str, Any], x: Any, y: Any) -> dict:
    """One curve: `{"label", "params", "x", "y"}` with `x`, `y` as lists of floats.

    `params` may only use the keys `PARAM_KEYS`; ValueError otherwise.
    """
    unknown = sorted(set(params) - set(PARAM_KEYS))
    if unknown:
        raise ValueError(f"make_series: params keys {unknown} are not among {PARAM_KEYS}")
    x, y = _floats(x), _floats(y)
    if len(x) != len(y):
        raise ValueError(f"make_series: `x` and `y` must have the same length, got {len(x)} "
                         f"and {len(y)} for {label!r}")
    clean = {k: (float(v) if isinstance(v, (float, np.floating)) else
                 int(v) if isinstance(v, (int, np.integer)) else v) for k, v in params.items()}
    return {"label": label, "params": clean, "x": x, "y": y}


def find_series(result: Mapping[str, Any], **params: Any) -> dict:
    """The unique series whose `params` contain every given `key=value`; ValueError otherwise."""
    found = [s for s in result["series"]
             if all(_same(s["params"].get(k), v) for k, v in params.items())]
    if len(found) != 1:
        raise ValueError(f"find_series: {len(found)} series match {params} in "
                         f"{result['experiment']}")
    return found[0]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and abs(float(a) - float(b)) < 1e-9
    return a == b


# ----------------------------------------------------------------------------------------
# Prediction on the random walks (Example 6.2, Figures 7.2, 12.3, 12.6, 12.8).
# ----------------------------------------------------------------------------------------


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


def _walk(num_states: int):
    if num_states == 5:
        env, params = envs.make("RandomWalk-v0")
    else:
        env, params = envs.make("RandomWalk19-v0")
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


def example_6_2(key: Array, runs: int) -> list[dict]:
    """Example 6.2: TD(0) vs constant-alpha MC on the 5-state walk, RMS error per episode."""
    episodes = 100
    env, params, table, inner, rms = _walk(5)
    w0 = np.zeros(table, np.float32)
    w0[inner] = 0.5
    td_alphas, mc_alphas = [0.05, 0.1, 0.15], [0.01, 0.02, 0.03, 0.04]
    td = prediction.make_predictor("td_lambda")
    mc = prediction.make_predictor("mc")

    def compute(data):
        streams = feature_streams(data, table)
        td_err = sweep_predictor(td, w0, [("alpha", td_alphas)], streams, rms, episodes,
                                 fixed={"lambda_": 0.0})
        mc_err = sweep_predictor(mc, w0, [("alpha", mc_alphas)], streams, rms, episodes)
        return td_err.mean(axis=0), mc_err.mean(axis=0)

    # 100 episodes of 9 +- 7 steps: 1280 steps (5 standard deviations) are nearly always enough.
    td_err, mc_err = fused_streams(env, params, key, runs, episodes, compute, 1280)
    x = np.arange(episodes + 1)
    start = float(rms(w0))
    series = []
    for method, alphas, err in (("TD", td_alphas, td_err), ("MC", mc_alphas, mc_err)):
        for i, alpha in enumerate(alphas):
            series.append(make_series(f"{method} alpha={alpha}", {"method": method,
                                                                 "alpha": alpha},
                                      x, np.concatenate([[start], err[i]])))
    return series


N_VALUES = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
ALPHAS_7_2 = [round(0.1 * i, 1) for i in range(11)]
LAMBDAS = [0.0, 0.4, 0.8, 0.9, 0.95, 0.975, 0.99, 1.0]
ALPHAS_12 = [round(0.05 * i, 2) for i in range(21)]


def _nineteen_state_sweep(key: Array, runs: int, predictor: prediction.Predictor,
                          axes: Sequence[tuple[str, Sequence[float]]]) -> np.ndarray:
    """Figure 7.2 protocol: mean RMS over episodes 1..10 and runs, for each grid setting."""
    episodes = 10
    env, params, table, _, rms = _walk(19)
    w0 = np.zeros(table, np.float32)

    def compute(data):
        err = sweep_predictor(predictor, w0, axes, feature_streams(data, table), rms, episodes)
        return err.mean(axis=(0, -1))

    # 10 episodes of 100 +- 81 steps: 2048 steps are nearly always enough.
    return np.asarray(fused_streams(env, params, key, runs, episodes, compute, 2048))


def figure_7_2(key: Array, runs: int) -> list[dict]:
    """Figure 7.2: n-step TD on the 19-state walk, error vs alpha for each n."""
    err = _nineteen_state_sweep(key, runs, prediction.make_predictor("n_step_td"),
                                [("n", N_VALUES), ("alpha", ALPHAS_7_2)])
    return [make_series(f"n={n}", {"method": "n_step_td", "n": n}, ALPHAS_7_2, err[i])
            for i, n in enumerate(N_VALUES)]


def _lambda_figure(method: str):
    def figure(key: Array, runs: int) -> list[dict]:
        err = _nineteen_state_sweep(key, runs, prediction.make_predictor(method),
                                    [("lambda_", LAMBDAS), ("alpha", ALPHAS_12)])
        return [make_series(f"lambda={lam}", {"method": method, "lambda": lam}, ALPHAS_12,
                            err[i]) for i, lam in enumerate(LAMBDAS)]
    figure.__doc__ = f"Figures 12.3 / 12.6 / 12.8 protocol for {method}: error vs alpha per lambda."
    return figure


def figure_12_3(key: Array, runs: int) -> list[dict]:
    """Figure 12.3: off-line lambda-return algorithm, error vs alpha for each lambda."""
    return _lambda_figure("offline_lambda_return")(key, runs)


def figure_12_6(key: Array, runs: int) -> list[dict]:
    """Figure 12.6: TD(lambda) with accumulating traces, error vs alpha for each lambda."""
    return _lambda_figure("td_lambda")(key, runs)


def figure_12_8(key: Array, runs: int) -> list[dict]:
    """Figure 12.8: true online TD(lambda), error vs alpha for each lambda."""
    return _lambda_figure("true_online_td_lambda")(key, runs)


# ----------------------------------------------------------------------------------------
# Control: episodes of an `Agent` (Examples 6.5, 6.6, Figure 6.5, Figure 10.2).
# ----------------------------------------------------------------------------------------


class EpisodeStats(NamedTuple):
    """Per-episode statistics of R runs, each `[R, E]`.

    Attributes:
      returns: float32, the (undiscounted) sum of rewards of each episode.
      lengths: int32, steps of each episode.
      first_actions: int32, the first action of each episode.
      total_steps: int32 `[R]`, steps taken until the run's last recorded episode ended.
    """

    returns: Array
    lengths: Array
    first_actions: Array
    total_steps: Array


def run_episodes(agent: Agent, env: env_base.Environment, env_params: Any, keys: Array,
                 hparams: Mapping[str, Any] | None, num_episodes: int,
                 act: Callable | None = None, max_steps: int = 10_000_000) -> EpisodeStats:
    """Trains R independent agents online, one environment each, for `num_episodes` episodes.

    One `lax.while_loop` over time steps of a `vmap` over the runs: `act`, `env.step`
    (automatic reset; the transition carries the true final observation and
    `discount_t = gamma * (1 - terminated)`) and `agent.update`, as in `agents.jax_loop`.
    The loop stops when EVERY run has finished `num_episodes` episodes (or after
    `max_steps` steps); a run that is done keeps learning, but nothing of it is recorded
    after its last episode (so no per-step freezing of its state is needed).

    Args:
      agent: an `Agent` (built for `num_envs = 1`).
      env: a tdkit environment.
      env_params: its params (shared by the runs).
      keys: PRNG keys `[R]`, one per run.
      hparams: the agents' hyperparameter overrides: scalars (shared) or `[R]` arrays
        (one per run, e.g. a flattened grid of step sizes), or None.
      num_episodes: `E`.
      act: `act(key, agent_state, obs [1, O...]) -> actions [1]`; default `agent.act`.
      max_steps: a safety cap on the number of steps.

    Returns:
      `EpisodeStats` with leading `[R]`.
    """
    act = agent.act if act is None else act
    runs = keys.shape[0]
    hparams = {k: jnp.broadcast_to(jnp.asarray(v, jnp.float32), (runs,))
               for k, v in (hparams or {}).items()}
    step_env = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def init(key, hp):
        k_env, k_agent, k_loop = jax.random.split(key, 3)
        obs, env_state = env.reset(k_env, env_params)
        obs = obs[None]
        env_state = jax.tree.map(lambda x: x[None], env_state)
        return agent.init(k_agent, obs[0], 1, hp), env_state, obs, k_loop

    def step(agent_state, env_state, obs, key):
        """One step of one run (N = 1 environment)."""
        key, k_act, k_step = jax.random.split(key, 3)
        action = act(k_act, agent_state, obs)
        next_obs, env_state, reward, terminated, truncated, info = step_env(
            k_step[None], env_state, action, env_params)
        gamma = agent_state.hparams["gamma"]
        transition = Transition(
            obs_tm1=obs, a_tm1=action, r_t=reward.astype(jnp.float32),
            discount_t=gamma * (1.0 - terminated.astype(jnp.float32)),
            obs_t=info["final_observation"])
        last = jnp.logical_or(terminated, truncated)
        agent_state, _ = agent.update(agent_state, transition, last)
        return agent_state, env_state, next_obs, key, action[0], reward[0], last[0]

    class Carry(NamedTuple):
        agent: Any
        env_state: Any
        obs: Array
        key: Array
        t: Array
        episode: Array  # [R]
        ep_return: Array  # [R]
        ep_length: Array  # [R]
        ep_first: Array  # [R]
        stats: EpisodeStats

    def cond(c: Carry):
        return jnp.any(c.episode < num_episodes) & (c.t < max_steps)

    def body(c: Carry):
        agent_state, env_state, obs, key, action, reward, done = jax.vmap(step)(
            c.agent, c.env_state, c.obs, c.key)
        ep_return = c.ep_return + reward
        ep_length = c.ep_length + 1
        ep_first = jnp.where(c.ep_length == 0, action, c.ep_first)
        # One scatter per buffer; index E (out of bounds) drops the write.
        slot = jnp.where(done, c.episode, num_episodes)
        lanes = jnp.arange(runs)
        recording = c.episode < num_episodes
        stats = EpisodeStats(
            returns=c.stats.returns.at[lanes, slot].set(ep_return, mode="drop"),
            lengths=c.stats.lengths.at[lanes, slot].set(ep_length, mode="drop"),
            first_actions=c.stats.first_actions.at[lanes, slot].set(ep_first, mode="drop"),
            total_steps=jnp.where(recording, c.t + 1, c.stats.total_steps))
        return Carry(agent_state, env_state, obs, key, c.t + 1,
                     c.episode + done.astype(jnp.int32),
                     jnp.where(done, 0.0, ep_return), jnp.where(done, 0, ep_length),
                     ep_first, stats)

    agent_state, env_state, obs, loop_keys = jax.vmap(init)(keys, hparams)
    zeros_f = jnp.zeros((runs, num_episodes), jnp.float32)
    zeros_i = jnp.zeros((runs, num_episodes), jnp.int32)
    lane = jnp.zeros((runs,), jnp.int32)
    carry = Carry(agent_state, env_state, obs, loop_keys, jnp.zeros((), jnp.int32), lane,
                  jnp.zeros((runs,), jnp.float32), lane, lane,
                  EpisodeStats(zeros_f, zeros_i, zeros_i, lane))
    return jax.lax.while_loop(cond, body, carry).stats


def example_6_6(key: Array, runs: int) -> list[dict]:
    """Example 6.6: Sarsa vs Q-learning on the cliff, sum of rewards per episode."""
    episodes = 500
    env, params = envs.make("CliffWalking-v0")
    num_states, num_actions = int(env.extras["num_states"]), env.num_actions
    agents = {rule: tabular.tabular_agent(rule, num_states, num_actions,
                                          tabular.TabularConfig(epsilon=0.1))
              for rule in ("sarsa", "q_learning")}
    hparams = {"alpha": 0.5, "gamma": 1.0}

    @jax.jit
    def compute(key):
        keys = jax.random.split(key, runs)
        return {rule: run_episodes(agent, env, params, keys, hparams, episodes).returns.mean(0)
                for rule, agent in agents.items()}

    out = jax.device_get(compute(key))
    x = np.arange(1, episodes + 1)
    return [make_series(rule.replace("q_learning", "Q-learning").replace("sarsa", "Sarsa"),
                        {"method": rule, "alpha": 0.5}, x, out[rule]) for rule in agents]


def masked_epsilon_greedy_act(valid_actions: Any, epsilon: float) -> Callable:
    """`act` for the tabular agents restricted to each state's valid actions.

    Epsilon-greedy over `Q1 + Q2` (Double Q-learning; `2 Q` for the one-table agents, the
    same choice) among `valid_actions[s]` only: `epsilon` spread evenly over the valid
    actions, `1 - epsilon` over the maximal valid ones (`tdkit.policies`, random ties).

    Args:
      valid_actions: bool `[S, A]`.
      epsilon: exploration rate.

    Returns:
      `act(key, agent_state, obs [N]) -> actions [N]`.
    """
    valid = jnp.asarray(valid_actions, jnp.bool_)

    def one(key, q, mask):
        greedy = policies.epsilon_greedy_probs(jnp.where(mask, q, -jnp.inf), jnp.float32(0.0))
        probs = epsilon * mask / mask.sum() + (1.0 - epsilon) * greedy
        return jax.random.choice(key, q.shape[0], p=probs).astype(jnp.int32)

    def act(key, state, obs):
        q = state.params["table"][obs] + state.target_params["table"][obs]
        keys = jax.random.split(key, obs.shape[0])
        return jax.vmap(one)(keys, q, valid[obs])

    return act


def figure_6_5(key: Array, runs: int) -> list[dict]:
    """Figure 6.5: % of "left" from A per episode, Q-learning vs Double Q-learning."""
    episodes = 300
    env, params = envs.make("MaximizationBias-v0")
    valid = env.extras["valid_actions"]
    act = masked_epsilon_greedy_act(valid, 0.1)
    agents = {rule: tabular.tabular_agent(rule, 3, env.num_actions,
                                          tabular.TabularConfig(epsilon=0.1))
              for rule in ("q_learning", "double_q_learning")}
    hparams = {"alpha": 0.1, "gamma": 1.0}

    @jax.jit
    def compute(key):
        keys = jax.random.split(key, runs)
        return {rule: run_episodes(agent, env, params, keys, hparams, episodes,
                                   act=act).first_actions for rule, agent in agents.items()}

    out = jax.device_get(compute(key))
    x = np.arange(1, episodes + 1)
    labels = {"q_learning": "Q-learning", "double_q_learning": "Double Q-learning"}
    return [make_series(labels[rule], {"method": rule, "alpha": 0.1}, x,
                        100.0 * np.mean(out[rule] == 0, axis=0)) for rule in agents]


def example_6_5(key: Array, runs: int) -> list[dict]:
    """Example 6.5: Sarsa on the windy gridworld, episodes completed vs time steps.

    Trained by `agents.jax_loop` (one environment per run, vmapped over runs).
    """
    num_steps, every = 8000, 10
    env, params = envs.make("WindyGridworld-v0")
    agent = tabular.tabular_agent("sarsa", int(env.extras["num_states"]), env.num_actions,
                                  tabular.TabularConfig(epsilon=0.1))
    loop = jax_loop.make_jax_loop(agent, env, params, num_envs=1, eval_episodes=0)
    @jax.jit
    def compute(key):
        keys = jax.random.split(key, runs)
        states = jax.vmap(lambda k: loop.init(k, {"alpha": 0.5, "gamma": 1.0}))(keys)
        _, metrics = jax.vmap(lambda s: loop.run(s, num_steps))(states)
        return jnp.cumsum(metrics.finished, axis=1).astype(jnp.float32).mean(axis=0)

    episodes = np.concatenate([[0.0], np.asarray(jax.device_get(compute(key)))])
    x = np.arange(0, num_steps + 1, every)
    return [make_series("Sarsa", {"method": "sarsa", "alpha": 0.5}, x, episodes[x])]


MOUNTAIN_CAR_ALPHAS = [0.1, 0.2, 0.5]


def figure_10_2(key: Array, runs: int) -> list[dict]:
    """Figure 10.2: one-step semi-gradient Sarsa with tile coding on Mountain Car.

    8 tilings of 8 x 8 tiles over the book's box x in [-1.2, 0.5], v in [-0.07, 0.07]
    (collision-free indices, the same features as tiles3 with an IHT that never fills),
    one weight set per action, step alpha / 8, epsilon = 0, no time limit; steps per
    episode averaged over runs.
    """
    episodes = 500
    env, params = envs.make("MountainCar-v0", max_steps=env_base.NO_TIME_LIMIT)
    box = gymnasium.spaces.Box(np.array([-1.2, -0.07], np.float32),
                               np.array([0.5, 0.07], np.float32))
    agent = linear.sarsa_lambda_agent(
        box, env.num_actions, linear.LinearConfig(num_tilings=8, iht_size=0, tiles_per_dim=8,
                                                  trace="none"))
    @jax.jit
    def compute(key):
        # Runs x step sizes flattened to one batch of R * 3 lanes (the same keys per alpha).
        lane_keys = jnp.tile(jax.random.split(key, runs), len(MOUNTAIN_CAR_ALPHAS))
        lane_alphas = jnp.repeat(jnp.asarray(MOUNTAIN_CAR_ALPHAS, jnp.float32), runs)
        hp = {"alpha": lane_alphas, "gamma": 1.0, "epsilon": 0.0, "lambda_": 0.0}
        lengths = run_episodes(agent, env, params, lane_keys, hp, episodes).lengths
        return lengths.astype(jnp.float32).reshape(len(MOUNTAIN_CAR_ALPHAS), runs, -1).mean(1)

    steps = np.asarray(jax.device_get(compute(key)))
    x = np.arange(1, episodes + 1)
    return [make_series(f"alpha={a}/8", {"method": "sarsa", "alpha": a}, x, steps[i])
            for i, a in enumerate(MOUNTAIN_CAR_ALPHAS)]


# ----------------------------------------------------------------------------------------
# Off-policy prediction on Baird's counterexample (Figures 11.2, 11.5, 11.6).
# ----------------------------------------------------------------------------------------


class BairdTask(NamedTuple):
    """Baird's counterexample for the experiments: environment, target-policy model
    (`P [7, 7]`, `r [7]`, `gamma`), features `X [7, 8]`, uniform behaviour distribution
    `mu`, true values and the book's initial weights."""

    env: Any
    params: Any
    P: Array
    r: Array
    gamma: float
    X: Array
    mu: Array
    v_true: Array
    w0: Array


def baird_task() -> BairdTask:
    """The `BairdTask` built from `envs.make("BairdCounterexample-v0")` and its extras."""
    env, params = envs.make("BairdCounterexample-v0")
    ex = env.extras
    model = ex["model"]
    P = np.einsum("sa,sat->st", ex["target_policy"], model.transition)
    r = np.einsum("sa,sa->s", ex["target_policy"], model.reward)
    f32 = lambda a: np.asarray(a, np.float32)
    num_states = int(ex["num_states"])
    return BairdTask(env, params, f32(P), f32(r), float(ex["gamma"]), f32(ex["feature_matrix"]),
                  f32(np.full(num_states, 1.0 / num_states)), f32(ex["true_values"]),
                  f32(ex["initial_weights"]))


def baird_streams(b: BairdTask, key: Array, runs: int, num_steps: int) -> prediction.Stream:
    """Behaviour-policy experience (b(solid) = 1/7) with importance ratios (0 or 7): `runs`
    streams of `num_steps` steps, features as observations (traceable)."""
    probs = np.asarray(b.env.extras["behaviour_probs"], np.float32)
    ratios = np.asarray(b.env.extras["importance_ratios"], np.float32)

    def actions(k):
        action = jax.random.choice(k, probs.shape[0], p=probs).astype(jnp.int32)
        return action, jnp.asarray(ratios)[action]

    data = sample_streams(b.env, b.params, jax.random.split(key, runs), num_steps,
                          actions=actions)
    return feature_streams(data, None, gamma=b.gamma)


def _baird_observe(b: BairdTask) -> Callable:
    """`w -> (w [8], sqrt(VE), sqrt(PBE))` under the uniform behaviour state distribution."""
    def observe(w):
        return (w, dp.rms_value_error(w, b.X, b.v_true, b.mu),
                dp.rms_projected_bellman_error(w, b.P, b.r, b.gamma, b.X, b.mu))
    return observe


def _baird_series(method: str, label: str, ws: Array, extra: Mapping[str, Array],
                  params: Mapping[str, Any]) -> list[dict]:
    ws = np.asarray(ws)
    x = np.arange(ws.shape[0])
    out = [make_series(f"{label} w{i + 1}", {"method": method, "quantity": f"w{i + 1}",
                                              **params}, x, ws[:, i]) for i in range(8)]
    for quantity, values in extra.items():
        out.append(make_series(f"{label} sqrt({quantity})",
                               {"method": method, "quantity": quantity, **params}, x, values))
    return out


def _baird_sample_run(b: BairdTask, key: Array, runs: int, method: str,
                      hparams: Mapping[str, float], num_steps: int = 1000):
    """Mean over runs of (w, sqrt VE, sqrt PBE) before and after each of `num_steps` steps."""
    predictor = prediction.make_predictor(method)
    observe = _baird_observe(b)

    @jax.jit
    def compute(key):
        streams = baird_streams(b, key, runs, num_steps)
        records = sweep_predictor(predictor, b.w0, [], streams, observe, num_steps,
                                  fixed=hparams)
        first = jax.tree.map(lambda v: jnp.broadcast_to(v, (runs, 1) + v.shape), observe(b.w0))
        return jax.tree.map(lambda f, rec: jnp.concatenate([f, rec], axis=1).mean(axis=0),
                            first, records)

    return jax.device_get(compute(key))


def figure_11_2(key: Array, runs: int) -> list[dict]:
    """Figure 11.2: semi-gradient off-policy TD (left) and semi-gradient DP (right) diverge."""
    b = baird_task()
    ws, _, _ = _baird_sample_run(b, key, runs, "td", {"alpha": 0.01})

    @jax.jit
    def expected():
        _, hist = dp.iterate(
            lambda w: dp.expected_td_update(w, b.P, b.r, b.gamma, b.X, b.mu, 0.01), b.w0, 1000)
        return hist

    return (_baird_series("td", "TD", ws, {}, {"alpha": 0.01})
            + _baird_series("semi_gradient_dp", "DP", jax.device_get(expected()), {},
                            {"alpha": 0.01}))


def figure_11_5(key: Array, runs: int) -> list[dict]:
    """Figure 11.5: TDC (left, sample updates; right, expected updates), alpha 0.005, beta 0.05."""
    b = baird_task()
    hp = {"alpha": 0.005, "beta": 0.05}
    ws, ve, pbe = _baird_sample_run(b, key, runs, "tdc", hp)
    observe = _baird_observe(b)

    @jax.jit
    def expected():
        _, hist = dp.iterate(
            lambda s: dp.expected_tdc_update(s, b.P, b.r, b.gamma, b.X, b.mu, 0.005, 0.05),
            gradient_td.gtd_init(b.w0), 1000)
        return jax.vmap(observe)(hist.w)

    e_ws, e_ve, e_pbe = jax.device_get(expected())
    return (_baird_series("tdc", "TDC", ws, {"VE": ve, "PBE": pbe}, {"alpha": 0.005})
            + _baird_series("expected_tdc", "Expected TDC", e_ws, {"VE": e_ve, "PBE": e_pbe},
                            {"alpha": 0.005}))


def figure_11_6(key: Array, runs: int) -> list[dict]:
    """Figure 11.6: expected one-step emphatic TD, alpha 0.03 (emphasis from M = 0 at t = 0)."""
    del key, runs  # deterministic expected updates
    b = baird_task()
    observe = _baird_observe(b)

    @jax.jit
    def expected():
        def sweep(state):
            w, f = state
            f = dp.expected_followon_update(f, b.P, b.gamma, b.mu)
            return dp.expected_emphatic_td_update(w, f, b.P, b.r, b.gamma, b.X, 0.03), f

        _, (ws, _) = dp.iterate(sweep, (b.w0, jnp.zeros_like(b.mu)), 1000)
        return jax.vmap(observe)(ws)

    ws, ve, _ = jax.device_get(expected())
    return _baird_series("expected_etd", "Expected ETD", ws, {"VE": ve}, {"alpha": 0.03})


# ----------------------------------------------------------------------------------------
# Boyan's chain: LSTD and the linear TD family (Boyan 2002).
# ----------------------------------------------------------------------------------------

BOYAN_METHODS = (
    ("lstd", "LSTD(0)", {"lambda_": 0.0, "epsilon": 0.1}),
    ("td", "TD(0)", {"alpha": 0.1}),
    ("tdc", "TDC", {"alpha": 0.3, "beta": 0.3}),
    ("gtd2", "GTD2", {"alpha": 0.3, "beta": 0.1}),
    ("tdrc", "TDRC", {"alpha": 0.1, "eta": 1.0, "beta_reg": 1.0}),
    ("etd", "ETD(0)", {"alpha": 0.03, "lambda_": 0.0}),
)
"""(method, label, hyperparameters) of the Boyan-chain comparison; the step sizes are the
best final errors of a small grid (alpha, beta in {0.3, 0.1, 0.03}, 30 runs)."""


def boyan_lstd(key: Array, runs: int, methods=BOYAN_METHODS) -> list[dict]:
    """Boyan chain: RMS value error over the 12 non-terminal states vs episodes, per method.

    Every method sees the same episodes in each run (4 interpolated features, gamma = 1,
    on-policy so rho = 1); LSTD(0) and the TD family share the fixed point w* =
    (-24, -16, -8, 0), where the error is 0.
    """
    episodes = 100
    env, params = envs.make("BoyanChain-v0", observation="features")
    v_true = np.asarray(env.extras["true_values"], np.float32)
    X = np.asarray(env.extras["feature_matrix"], np.float32)
    inner = np.asarray(env.extras["nonterminal_states"])
    w0 = np.zeros(X.shape[1], np.float32)

    def rmse(w):
        xp = np if isinstance(w, np.ndarray) else jnp
        return xp.sqrt(xp.mean((X[inner] @ w - v_true[inner]) ** 2))

    def compute(data):
        streams = feature_streams(data, None)
        return [sweep_predictor(prediction.make_predictor(m), w0, [], streams, rmse, episodes,
                                fixed=hp).mean(axis=0) for m, _, hp in methods]

    # 100 episodes of about 8 steps each.
    errors = fused_streams(env, params, key, runs, episodes, compute, 1024)
    x = np.arange(episodes + 1)
    start = float(rmse(w0))
    swept = lambda hp: {k: hp[k] for k in ("alpha",) if k in hp}
    return [make_series(label, {"method": m, "quantity": "rmse", **swept(hp)}, x,
                        np.concatenate([[start], err]))
            for (m, label, hp), err in zip(methods, errors, strict=True)]


# ----------------------------------------------------------------------------------------
# The registry: default run counts, what the book reports, plots.
# ----------------------------------------------------------------------------------------


class Panel(NamedTuple):
    """One subplot: the series whose params contain `select`, with axis labels and scales."""

    title: str
    xlabel: str
    ylabel: str
    select: Mapping[str, Any] = {}
    exclude: Mapping[str, Any] = {}
    yscale: str = "linear"
    ylim: tuple[float, float] | None = None
    hline: float | None = None


class Experiment(NamedTuple):
    """A reproducible experiment.

    Attributes:
      name: the CLI name, e.g. "figure-7.2".
      title: what it reproduces.
      default_runs: the book's number of runs (1 for its single-run figures); where the
        source states none, 200 (the cliff) and 100 (Boyan's chain).
      compute: `compute(key, runs) -> list of series`.
      summary: `summary(result) -> [(quantity, measured, book), ...]` for the table.
      panels: the plot's subplots.
    """

    name: str
    title: str
    default_runs: int
    compute: Callable[[Array, int], list]
    summary: Callable[[Mapping[str, Any]], list]
    panels: tuple


def _fmt(v: float | None, digits: int = 3) -> str:
    return "nan" if v is None or not math.isfinite(v) else f"{v:.{digits}g}"


def _argmin(series: dict) -> tuple[float, float]:
    ys = np.array([np.inf if y is None else y for y in series["y"]])
    i = int(np.argmin(ys))
    return series["x"][i], float(ys[i])


def _summary_6_2(result):
    td = [s for s in result["series"] if s["params"]["method"] == "TD"]
    mc = [s for s in result["series"] if s["params"]["method"] == "MC"]
    worst_td = max(td, key=lambda s: s["y"][-1])
    best_mc = min(mc, key=lambda s: s["y"][-1])
    return [("RMS at episode 0", _fmt(td[0]["y"][0], 6), "sqrt(1/18) = 0.235702 (exact)")] + [
        (f"RMS at episode 100, {s['label']}", _fmt(s["y"][-1]), "") for s in td + mc] + [
        ("worst TD vs best MC at episode 100",
         f"{_fmt(worst_td['y'][-1])} vs {_fmt(best_mc['y'][-1])}",
         "TD better than MC for every alpha shown")]


def _summary_grid(key: str, book_best: str):
    def summary(result):
        rows = []
        best = None
        for s in result["series"]:
            alpha, err = _argmin(s)
            rows.append((f"{s['label']}: min error (at alpha)", f"{_fmt(err)} ({alpha:g})", ""))
            if best is None or err < best[0]:
                best = (err, s["params"][key], alpha)
        alpha0 = result["series"][0]["y"][0]
        rows.append(("error at alpha = 0", _fmt(alpha0, 6), "sqrt(0.3) = 0.547723 (exact)"))
        rows.append((f"best (error, {key}, alpha)", f"{_fmt(best[0])}, {best[1]:g}, {best[2]:g}",
                     book_best))
        return rows
    return summary


def _summary_6_5(result):
    s = result["series"][0]
    return [("episodes completed in 8000 steps", _fmt(s["y"][-1]), "about 170")]


def _summary_6_6(result):
    rows = []
    for s, book in zip(result["series"], ("about -25", "about -50"), strict=True):
        rows.append((f"{s['label']}: mean sum of rewards, episodes 401-500",
                     _fmt(float(np.mean(s["y"][-100:]))), book))
    return rows


def _summary_fig_6_5(result):
    q, dq = result["series"]
    return [("Q-learning: peak % left (episode)",
             f"{_fmt(max(q['y']))} ({q['x'][int(np.argmax(q['y']))]:g})",
             "far above the optimal 5% early on"),
            ("Q-learning: % left, episodes 251-300", _fmt(float(np.mean(q["y"][-50:]))),
             "stays above 5%"),
            ("Double Q-learning: % left, episodes 251-300", _fmt(float(np.mean(dq["y"][-50:]))),
             "close to 5% (optimal with epsilon = 0.1)")]


def _weights_at_end(result, method):
    return [find_series(result, method=method, quantity=f"w{i}")["y"][-1] for i in range(1, 9)]


def _summary_11_2(result):
    dp_w = _weights_at_end(result, "semi_gradient_dp")
    td_w = _weights_at_end(result, "td")
    return [("DP after 1000 sweeps: w1..w6", _fmt(dp_w[0], 6), "114.434 (exact)"),
            ("DP after 1000 sweeps: w7", _fmt(dp_w[6], 6), "6.850 (exact)"),
            ("DP after 1000 sweeps: w8", _fmt(dp_w[7], 6), "335.001 (exact)"),
            ("TD after 1000 steps: max |w|", _fmt(max(abs(w) for w in td_w)),
             "diverges (weights grow without bound)")]


def _summary_11_5(result):
    rows = []
    for method, label in (("tdc", "TDC"), ("expected_tdc", "Expected TDC")):
        pbe = find_series(result, method=method, quantity="PBE")["y"]
        ve = find_series(result, method=method, quantity="VE")["y"]
        rows.append((f"{label}: sqrt(PBE) at 0 / 1000", f"{_fmt(pbe[0])} / {_fmt(pbe[-1])}",
                     "goes to 0"))
        rows.append((f"{label}: sqrt(VE) at 1000", _fmt(ve[-1]), "stays near 2"))
    return rows


def _summary_11_6(result):
    ve = find_series(result, method="expected_etd", quantity="VE")["y"]
    return [("Expected ETD: sqrt(VE) at 0 / 1000", f"{_fmt(ve[0])} / {_fmt(ve[-1])}",
             "goes to 0 (converges)")]


def _summary_10_2(result):
    return [(f"{s['label']}: steps, episode 1 / mean of 451-500",
             f"{_fmt(s['y'][0], 4)} / {_fmt(float(np.mean(s['y'][-50:])), 4)}",
             "thousands at first / about 120-140")
            for s in result["series"]]


def _summary_boyan(result):
    return [(f"{s['label']}: RMS error after 10 / 100 episodes",
             f"{_fmt(s['y'][10])} / {_fmt(s['y'][-1])}",
             "LSTD fastest; all share the fixed point w* (error 0)")
            for s in result["series"]]


def _lambda_panel(title):
    return (Panel(title, "alpha", "average RMS error over 19 states and first 10 episodes",
                  ylim=(0.25, 0.55)),)


def _baird_panels(methods: Sequence[tuple[str, str]], ylabel: str) -> tuple:
    return tuple(Panel(title, "steps" if "expected" not in m and m != "semi_gradient_dp"
                       else "sweeps", ylabel, select={"method": m}) for m, title in methods)


EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (
    Experiment("example-6.2", "Example 6.2: TD(0) vs constant-alpha MC, 5-state random walk",
               100, example_6_2, _summary_6_2,
               (Panel("Empirical RMS error, averaged over states", "walks / episodes",
                      "RMS error"),)),
    Experiment("figure-7.2", "Figure 7.2: n-step TD on the 19-state random walk", 100,
               figure_7_2, _summary_grid("n", "about 0.26-0.28 near n = 4, alpha = 0.4"),
               (Panel("n-step TD", "alpha",
                      "average RMS error over 19 states and first 10 episodes",
                      ylim=(0.25, 0.55)),)),
    Experiment("figure-12.3", "Figure 12.3: off-line lambda-return algorithm, 19-state walk",
               100, figure_12_3,
               _summary_grid("lambda", "intermediate lambda (about 0.8) best"),
               _lambda_panel("Off-line lambda-return algorithm")),
    Experiment("figure-12.6", "Figure 12.6: TD(lambda), 19-state random walk", 100,
               figure_12_6, _summary_grid("lambda", "intermediate lambda (about 0.8) best; "
                                          "large alpha degrades badly"),
               _lambda_panel("TD(lambda)")),
    Experiment("figure-12.8", "Figure 12.8: true online TD(lambda), 19-state random walk",
               100, figure_12_8,
               _summary_grid("lambda", "intermediate lambda (about 0.8) best; slightly "
                             "better than off-line lambda-return"),
               _lambda_panel("True online TD(lambda)")),
    Experiment("example-6.5", "Example 6.5: Sarsa on the windy gridworld",
               1, example_6_5, _summary_6_5,
               (Panel("Windy gridworld, Sarsa", "time steps", "episodes"),)),
    Experiment("example-6.6", "Example 6.6: Sarsa vs Q-learning on the cliff",
               200, example_6_6, _summary_6_6,
               (Panel("Cliff walking", "episodes", "sum of rewards during episode",
                      ylim=(-100.0, 0.0)),)),
    Experiment("figure-6.5", "Figure 6.5: maximization bias, Q-learning vs Double Q-learning",
               10_000, figure_6_5, _summary_fig_6_5,
               (Panel("Maximization bias", "episodes", "% left actions from A",
                      ylim=(0.0, 100.0), hline=5.0),)),
    Experiment("figure-11.2", "Figure 11.2: Baird's counterexample, semi-gradient TD and DP",
               1, figure_11_2, _summary_11_2,
               _baird_panels([("td", "Semi-gradient off-policy TD"),
                              ("semi_gradient_dp", "Semi-gradient DP")], "weights")),
    Experiment("figure-11.5", "Figure 11.5: TDC on Baird's counterexample", 1, figure_11_5,
               _summary_11_5,
               _baird_panels([("tdc", "TDC"), ("expected_tdc", "Expected TDC")],
                             "weights, sqrt(VE), sqrt(PBE)")),
    Experiment("figure-11.6", "Figure 11.6: expected emphatic TD on Baird's counterexample",
               1, figure_11_6, _summary_11_6,
               _baird_panels([("expected_etd", "Emphatic-TD")], "weights, sqrt(VE)")),
    Experiment("figure-10.2", "Figure 10.2: Mountain Car, semi-gradient Sarsa, tile coding",
               100, figure_10_2, _summary_10_2,
               (Panel("Mountain Car", "episode", "steps per episode (log scale)",
                      yscale="log"),)),
    Experiment("boyan-lstd", "Boyan's chain: LSTD(0) vs TD(0), TDC, GTD2, TDRC, ETD(0)", 100,
               boyan_lstd, _summary_boyan,
               (Panel("Boyan chain", "episodes", "RMS value error", yscale="log"),)),
)}
"""Every experiment by CLI name, in the order `all` runs them."""


def run_experiment(name: str, runs: int | None = None, seed: int = 0) -> dict:
    """Runs experiment `name` and returns its JSON-ready result.

    Args:
      name: a key of `EXPERIMENTS`.
      runs: number of independent runs (default: the book's).
      seed: PRNG seed.

    Returns:
      `{"experiment", "runs", "seconds", "series"}`; `seconds` includes compilation.
    """
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; valid: {', '.join(EXPERIMENTS)}")
    experiment = EXPERIMENTS[name]
    runs = experiment.default_runs if runs is None else runs
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        raise ValueError(f"`runs` must be a positive int, got {runs!r}")
    start = time.perf_counter()
    series = experiment.compute(jax.random.key(seed), runs)
    return {"experiment": name, "runs": runs, "seconds": time.perf_counter() - start,
            "series": series}


def format_table(result: Mapping[str, Any]) -> str:
    """A short plain-text table: what was measured next to what the book reports."""
    rows = EXPERIMENTS[result["experiment"]].summary(result)
    header = ("quantity", "measured", "book")
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(2)]
    lines = [f"{EXPERIMENTS[result['experiment']].title} (runs: {result['runs']}, "
             f"{result['seconds']:.1f} s including compilation)",
             f"  {header[0]:<{widths[0]}}  {header[1]:<{widths[1]}}  {header[2]}"]
    lines += [f"  {q:<{widths[0]}}  {m:<{widths[1]}}  {b}" for q, m, b in rows]
    return "\n".join(lines)


def plot_result(result: Mapping[str, Any], path: str | pathlib.Path) -> None:
    """Draws the experiment's figure (matplotlib, imported here) and saves it to `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    experiment = EXPERIMENTS[result["experiment"]]
    panels = experiment.panels
    fig, axes = plt.subplots(1, len(panels), figsize=(6.4 * len(panels), 4.8), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        for s in result["series"]:
            if not all(_same(s["params"].get(k), v) for k, v in panel.select.items()):
                continue
            x = np.array(s["x"], np.float64)
            y = np.array([np.nan if v is None else v for v in s["y"]], np.float64)
            style = "--" if s["params"].get("method") == "MC" else "-"
            label = s["label"]
            for prefix in ("Expected TDC ", "Expected ETD ", "TDC ", "TD ", "DP "):
                if label.startswith(prefix) and panel.select:
                    label = label[len(prefix):]
            ax.plot(x, y, style, label=label, linewidth=1.2)
        if panel.hline is not None:
            ax.axhline(panel.hline, color="grey", linestyle=":", label="optimal")
        ax.set_title(panel.title)
        ax.set_xlabel(panel.xlabel)
        ax.set_ylabel(panel.ylabel)
        ax.set_yscale(panel.yscale)
        if panel.ylim is not None:
            ax.set_ylim(*panel.ylim)
        ax.legend(fontsize="small")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{experiment.title} (runs: {result['runs']})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def save_result(result: Mapping[str, Any], out_dir: str | pathlib.Path,
                plot: bool = True) -> dict[str, pathlib.Path]:
    """Writes `out_dir/<experiment>.json` (strict JSON) and, if `plot`, `<experiment>.png`.

    Returns:
      `{"json": path, "png": path}` (no "png" without `plot`).
    """
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / f"{result['experiment']}.json"}
    paths["json"].write_text(json.dumps(result, indent=1, allow_nan=False) + "\n")
    if plot:
        paths["png"] = out / f"{result['experiment']}.png"
        plot_result(result, paths["png"])
    return paths
