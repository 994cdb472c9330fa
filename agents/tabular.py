"""Tabular TD control: Sarsa, Expected Sarsa, Q-learning and Double Q-learning.

Each agent is a `tdkit.values.tabular` action-value table trained by SGD with step size
`alpha` on `tdkit.losses.td_loss` (l2): the gradient step of `0.5 * delta**2` w.r.t.
`Q[s, a]` is exactly the textbook update `Q[s, a] += alpha * delta`. Acting is
epsilon-greedy with random tie-breaking (`tdkit.policies`). With N parallel environments the
N transitions' updates are summed (N = 1 reproduces the book).

- Sarsa samples the next action A' from the current table in `update` (before the table
  changes, as in the book's pseudocode) and `act` takes that action on the next step.
- Expected Sarsa bootstraps from the epsilon-greedy expectation (`epsilon` is static).
- Double Q-learning keeps two tables (`params` = Q1, `target_params` = Q2), acts
  epsilon-greedily on Q1 + Q2 and, with a coin flip each step, updates one table with the
  other one evaluating its greedy action (van Hasselt 2010; S&B section 6.7).
"""

import dataclasses

import jax
import jax.numpy as jnp
import optax

from agents.base import Agent, AgentState, merge_hparams
from tdkit import losses, policies, values
from tdkit.types import SarsaTransition

RULES = ("q_learning", "sarsa", "expected_sarsa", "double_q_learning")


@dataclasses.dataclass(frozen=True)
class TabularConfig:
    """Static settings of the tabular agents; numeric ones are in `DEFAULT_HPARAMS`."""

    epsilon: float = dataclasses.field(
        default=0.1, metadata={"help": "exploration rate of the epsilon-greedy policy"})
    init_value: float = dataclasses.field(
        default=0.0, metadata={"help": "initial action value of every table entry"})


DEFAULT_HPARAMS = {"alpha": 0.5, "gamma": 1.0}
HPARAM_HELP = {"alpha": "step size", "gamma": "discount factor"}


def validate(config: TabularConfig, hparams) -> None:
    """Raises ValueError for invalid settings, naming the setting."""
    if not 0.0 <= config.epsilon <= 1.0:
        raise ValueError(f"tabular: `epsilon` must be in [0, 1], got {config.epsilon}")
    for name, value in hparams.items():
        if isinstance(value, jax.core.Tracer):
            continue
        value = float(value)
        low_ok = value > 0.0 if name == "alpha" else value >= 0.0
        if not (low_ok and value <= 1.0):
            interval = "(0, 1]" if name == "alpha" else "[0, 1]"
            raise ValueError(f"tabular: `{name}` must be in {interval}, got {value}")


def tabular_agent(rule: str, num_states: int, num_actions: int,
                  config: TabularConfig = TabularConfig()) -> Agent:
    """Builds a tabular control agent.

    Args:
      rule: one of "q_learning", "sarsa", "expected_sarsa", "double_q_learning".
      num_states: number of states; observations are int32 state indices `[]`.
      num_actions: number of actions.
      config: static settings.

    Returns:
      An `Agent`; `hparams`: alpha (step size), gamma.
    """
    if rule not in RULES:
        raise ValueError(f"tabular_agent: `rule` must be one of {RULES}, got {rule!r}")
    validate(config, {})
    table = values.tabular(num_states, num_actions, init_value=config.init_value)
    loss = losses.td_loss(
        table, rule, "l2", epsilon=config.epsilon if rule == "expected_sarsa" else None)
    q_rows = jax.vmap(table.apply, in_axes=(None, 0))
    double = rule == "double_q_learning"

    def summed_grad(params, other, transitions):
        return jax.grad(lambda p: jax.vmap(loss, in_axes=(None, None, 0))(
            p, other, transitions).sum())(params)

    def init(key, example_obs, num_envs, hparams=None):
        hp = merge_hparams(DEFAULT_HPARAMS, hparams)
        validate(config, {**DEFAULT_HPARAMS, **(hparams or {})})  # as given (also under jit)
        k_params, k_state = jax.random.split(key)
        params = table.init(k_params, jnp.asarray(example_obs, jnp.int32))
        opt_state = optax.sgd(1.0).init(params)
        extra = {"next_action": jnp.zeros((num_envs,), jnp.int32),
                 "has_next": jnp.zeros((num_envs,), jnp.bool_)}
        return AgentState(params=params, target_params=jax.tree.map(jnp.copy, params),
                          opt_state=opt_state, replay=(), step=jnp.zeros((), jnp.int32),
                          key=k_state, hparams=hp, extra=extra)

    def behaviour_q(state, obs):
        q = q_rows(state.params, jnp.asarray(obs, jnp.int32))
        if double:
            q = q + q_rows(state.target_params, jnp.asarray(obs, jnp.int32))
        return q

    def sample(key, q, evaluation=False):
        eps = jnp.float32(0.0 if evaluation else config.epsilon)
        return policies.batched_epsilon_greedy(key, q, eps)

    def act(key, state, obs, evaluation=False):
        fresh = sample(key, behaviour_q(state, obs), evaluation)
        if rule == "sarsa" and not evaluation:
            return jnp.where(state.extra["has_next"], state.extra["next_action"], fresh)
        return fresh

    def update(state, transition, last):
        key, k_next, k_coin = jax.random.split(state.key, 3)
        alpha = state.hparams["alpha"]
        extra = state.extra
        if rule == "sarsa":
            a_t = sample(k_next, behaviour_q(state, transition.obs_t))
            transition = SarsaTransition(*transition, a_t=a_t)
            extra = {"next_action": a_t, "has_next": jnp.logical_not(last)}
        if double:
            coin = jax.random.bernoulli(k_coin)
            first, second = jax.tree.map(
                lambda a, b: jnp.where(coin, a, b), (state.params, state.target_params),
                (state.target_params, state.params))
            first = jax.tree.map(
                lambda p, g: p - alpha * g, first, summed_grad(first, second, transition))
            params, target_params = jax.tree.map(
                lambda a, b: jnp.where(coin, a, b), (first, second), (second, first))
        else:
            grad = summed_grad(state.params, state.params, transition)
            params = jax.tree.map(lambda p, g: p - alpha * g, state.params, grad)
            target_params = params
        loss_value = jax.vmap(loss, in_axes=(None, None, 0))(
            state.params, state.target_params if double else state.params, transition).mean()
        num_envs = transition.r_t.shape[0]
        state = state._replace(params=params, target_params=target_params, key=key,
                               step=state.step + num_envs, extra=extra)
        return state, {"loss": loss_value, "learned": jnp.ones((), jnp.bool_)}

    return Agent(init=init, act=act, update=update, name=rule,
                 default_hparams=dict(DEFAULT_HPARAMS))
