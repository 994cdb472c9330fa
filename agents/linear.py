"""Linear control with tile coding: semi-gradient Sarsa(lambda) (S&B Sections 10.1, 12.7).

The action values are `q(s, a) = w[:, a] . x(s)`: `tdkit.values.linear` with one weight set
per action over a `tdkit.features.tile_coding` of the (bounded) observation box, Sutton's
tiles3 tilings with asymmetric offsets. The per-weight step size is `alpha / num_tilings`
(the book's `alpha` is the step size "per tiling": `alpha = 0.5` makes one update move the
value of the visited state-action half way to the target).

With N parallel environments each environment has its own eligibility trace `z [F, A]`
and the N updates `(alpha / n) delta_i z_i` of one step are summed into the shared weights
(N = 1 is the book's boxed algorithm of Section 12.7, and of Section 10.1 for lambda = 0):

    z_i <- trace(z_i, x(S, A))               replacing: z = 1 on the active tiles of (S, A);
                                             accumulating: z += x(S, A)
    delta_i = R + gamma' q(S', A') - q(S, A)  (tdkit.sarsa; gamma' = 0 at termination)
    w <- w + (alpha / n) sum_i delta_i z_i
    z_i <- gamma' lambda z_i, and z_i = 0 after the last step of an episode

`last` (termination OR truncation) clears the trace: the transition at a time limit still
bootstraps from the true final observation, then the next episode starts clean.
`trace="none"` is one-step semi-gradient Sarsa (Example 10.1): a sparse update of the
`num_tilings` active weights, no trace state, `lambda_` unused.

As for the tabular Sarsa agent, the next action A' is sampled epsilon-greedily (random
ties) in `update` from the weights before the update, and `act` takes it on the next step.
The default `epsilon = 0` with zero initial weights is the book's optimistic exploration
(every reward is -1 in Mountain Car).
"""

import dataclasses

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

import tdkit
from agents.base import Agent, AgentState, merge_hparams
from tdkit import features, policies, traces, values

TRACES = ("replacing", "accumulating", "none")


@dataclasses.dataclass(frozen=True)
class LinearConfig:
    """Static settings of Sarsa(lambda) with tile coding; numeric ones are in `DEFAULT_HPARAMS`."""

    num_tilings: int = dataclasses.field(
        default=8, metadata={"help": "number of tilings (the per-weight step is alpha / this)"})
    iht_size: int = dataclasses.field(
        default=4096, metadata={"help": "hashed tile indices per action (tiles3 hashing); "
                                "0: one index per tile, no hashing and no collisions"})
    tiles_per_dim: int = dataclasses.field(
        default=8, metadata={"help": "tiles across the observation range in each dimension"})
    trace: str = dataclasses.field(
        default="replacing", metadata={"help": "eligibility trace: replacing, accumulating, "
                                       "or none (one-step semi-gradient Sarsa)"})


DEFAULT_HPARAMS = {"alpha": 0.5, "lambda_": 0.9, "gamma": 1.0, "epsilon": 0.0}
HPARAM_HELP = {
    "alpha": "step size per tiling (each weight moves by alpha / num_tilings)",
    "lambda_": "trace-decay parameter (unused with trace=none)",
    "gamma": "discount factor",
    "epsilon": "exploration rate of the epsilon-greedy policy (0: optimistic zero init)",
}


def validate(config: LinearConfig, hparams) -> None:
    """Raises ValueError for invalid settings, naming the setting."""
    for name in ("num_tilings", "tiles_per_dim"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"sarsa_lambda: `{name}` must be a positive int, got {value!r}")
    if (isinstance(config.iht_size, bool) or not isinstance(config.iht_size, (int, np.integer))
            or not 0 <= config.iht_size < 2**31):
        raise ValueError(
            f"sarsa_lambda: `iht_size` must be an int in [0, 2^31) (0: no hashing), "
            f"got {config.iht_size!r}")
    if config.trace not in TRACES:
        raise ValueError(f"sarsa_lambda: `trace` must be one of {TRACES}, got {config.trace!r}")
    for name, value in hparams.items():
        if isinstance(value, jax.core.Tracer):
            continue
        value = float(value)
        if name == "alpha":
            ok, interval = value > 0.0, "(0, inf)"
        else:
            ok, interval = 0.0 <= value <= 1.0, "[0, 1]"
        if not ok:
            raise ValueError(f"sarsa_lambda: `{name}` must be in {interval}, got {value}")


def observation_bounds(observation_space: gymnasium.Space) -> tuple[np.ndarray, np.ndarray]:
    """`(low, high)` float64 `[D]` of a bounded 1-D Box; ValueError otherwise."""
    if not (isinstance(observation_space, gymnasium.spaces.Box)
            and len(observation_space.shape) == 1):
        raise ValueError(
            "sarsa_lambda: tile coding needs vector observations (a 1-D Box), but the "
            f"environment has {observation_space}")
    low = np.asarray(observation_space.low, np.float64)
    high = np.asarray(observation_space.high, np.float64)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise ValueError(
            "sarsa_lambda: tile coding needs a bounded observation space (finite low and high "
            f"in every dimension), got low={low.tolist()}, high={high.tolist()}; wrap the "
            "environment to clip or rescale its observations")
    return low, high


def sarsa_lambda_agent(observation_space: gymnasium.Space, num_actions: int,
                       config: LinearConfig = LinearConfig()) -> Agent:
    """Builds semi-gradient Sarsa(lambda) with tile coding.

    Args:
      observation_space: a bounded 1-D `gymnasium.spaces.Box`; its `low` / `high` are the
        tile coder's range (observations outside are clipped into it).
      num_actions: `A`, the number of discrete actions.
      config: static settings.

    Returns:
      An `Agent` for observations `[N, D]` float; `hparams`: alpha, lambda_, gamma, epsilon.
      `AgentState.params` is `{"w": [F, A]}` (F = `iht_size`, or `num_tilings *
      (tiles_per_dim + 1)^D` without hashing); `extra` holds the traces `[N, F, A]` (none
      with `trace="none"`) and the next actions `[N]`.
    """
    validate(config, {})
    if isinstance(num_actions, bool) or not isinstance(num_actions, (int, np.integer)) or (
            num_actions < 1):
        raise ValueError(f"sarsa_lambda: `num_actions` must be a positive int, got {num_actions!r}")
    low, high = observation_bounds(observation_space)
    num_actions = int(num_actions)
    tile_coder = features.tile_coding(
        config.num_tilings, low, high, config.tiles_per_dim,
        iht_size=config.iht_size if config.iht_size else None)
    num_features = tile_coder.num_features
    q_fn = values.linear(num_features, num_actions, features=tile_coder)
    q_rows = jax.vmap(q_fn.apply, in_axes=(None, 0))
    use_trace = config.trace != "none"
    trace_fn = (traces.replacing_trace if config.trace == "replacing"
                else traces.accumulating_trace)

    def init(key, example_obs, num_envs, hparams=None):
        hp = merge_hparams(DEFAULT_HPARAMS, hparams)
        validate(config, {**DEFAULT_HPARAMS, **(hparams or {})})  # as given (also under jit)
        k_params, k_state = jax.random.split(key)
        params = q_fn.init(k_params, jnp.asarray(example_obs, jnp.float32))
        extra = {"next_action": jnp.zeros((num_envs,), jnp.int32),
                 "has_next": jnp.zeros((num_envs,), jnp.bool_)}
        if use_trace:
            extra["trace"] = jnp.zeros((num_envs, num_features, num_actions), jnp.float32)
        # A copy, not the same buffers: the loops donate the state to the jitted update.
        return AgentState(params=params, target_params=jax.tree.map(jnp.copy, params),
                          opt_state=(), replay=(),
                          step=jnp.zeros((), jnp.int32), key=k_state, hparams=hp, extra=extra)

    def sample(key, q, epsilon):
        keys = jax.random.split(key, q.shape[0])
        return jax.vmap(policies.epsilon_greedy, in_axes=(0, 0, None))(keys, q, epsilon)

    def act(key, state, obs, evaluation=False):
        epsilon = jnp.zeros((), jnp.float32) if evaluation else state.hparams["epsilon"]
        fresh = sample(key, q_rows(state.params, jnp.asarray(obs, jnp.float32)), epsilon)
        if evaluation:
            return fresh
        return jnp.where(state.extra["has_next"], state.extra["next_action"], fresh)

    def update(state, transition, last):
        key, k_next = jax.random.split(state.key)
        hp = state.hparams
        step_size = hp["alpha"] / config.num_tilings
        obs_tm1 = jnp.asarray(transition.obs_tm1, jnp.float32)
        obs_t = jnp.asarray(transition.obs_t, jnp.float32)
        a_tm1 = jnp.asarray(transition.a_tm1, jnp.int32)
        w = state.params["w"]
        idx_tm1 = jax.vmap(tile_coder.indices)(obs_tm1)  # [N, n], also used by the update
        q_tm1 = jnp.sum(w[idx_tm1], axis=1)  # == q_fn.apply(params, obs_tm1), [N, A]
        q_t = q_rows(state.params, obs_t)
        a_t = sample(k_next, q_t, hp["epsilon"])
        delta = jax.vmap(tdkit.sarsa)(q_tm1, a_tm1, transition.r_t, transition.discount_t,
                                      q_t, a_t)  # [N]
        extra = {"next_action": a_t, "has_next": jnp.logical_not(last)}
        if use_trace:
            x_tm1 = jax.vmap(tile_coder)(obs_tm1)  # [N, F]
            x_sa = (x_tm1[:, :, None] * jax.nn.one_hot(a_tm1, num_actions)[:, None, :])
            one = jnp.ones((), jnp.float32)
            z = jax.vmap(lambda z, x: trace_fn(z.reshape(-1), x.reshape(-1), one))(
                state.extra["trace"], x_sa).reshape(x_sa.shape)
            w = w + step_size * jnp.einsum("n,nfa->fa", delta, z)
            decay = (transition.discount_t * hp["lambda_"]
                     * jnp.logical_not(last).astype(jnp.float32))
            extra["trace"] = decay[:, None, None] * z
        else:
            rows = jnp.broadcast_to(a_tm1[:, None], idx_tm1.shape)
            contrib = jnp.broadcast_to((step_size * delta)[:, None], idx_tm1.shape)
            w = w.at[idx_tm1, rows].add(contrib)
        num_envs = transition.r_t.shape[0]
        params = {"w": w}
        state = state._replace(params=params, target_params=params, key=key,
                               step=state.step + num_envs, extra=extra)
        return state, {"loss": jnp.mean(0.5 * delta**2), "learned": jnp.ones((), jnp.bool_)}

    return Agent(init=init, act=act, update=update, name="sarsa_lambda",
                 default_hparams=dict(DEFAULT_HPARAMS))
