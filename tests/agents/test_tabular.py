"""Tabular control agents: one update on hand-made transitions, computed by hand."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents.tabular import TabularConfig, tabular_agent
from tdkit.types import Transition


def _transition(s, a, r, discount, s_next):
    return Transition(jnp.array([s], jnp.int32), jnp.array([a], jnp.int32),
                      jnp.array([r], jnp.float32), jnp.array([discount], jnp.float32),
                      jnp.array([s_next], jnp.int32))


def _agent_with_table(rule, table, epsilon=0.1, alpha=0.5, gamma=0.9):
    agent = tabular_agent(rule, 3, 2, TabularConfig(epsilon=epsilon))
    state = agent.init(jax.random.key(0), jnp.int32(0), 1, {"alpha": alpha, "gamma": gamma})
    table = {"table": jnp.asarray(table, jnp.float32)}
    return agent, state._replace(params=table, target_params=table)


def _q(params):
    return np.asarray(params["table"])


TABLE = [[1.0, 2.0], [3.0, 5.0], [0.0, 0.0]]


def test_q_learning_update():
    agent, state = _agent_with_table("q_learning", TABLE)
    state, metrics = agent.update(state, _transition(0, 1, 1.0, 0.9, 1), jnp.array([False]))
    # Q[0,1] += 0.5 * (1 + 0.9 * max(3, 5) - 2) = 2 + 0.5 * 3.5
    expected = np.array(TABLE)
    expected[0, 1] = 2.0 + 0.5 * 3.5
    np.testing.assert_allclose(_q(state.params), expected, rtol=1e-6)
    assert bool(metrics["learned"])


def test_termination_does_not_bootstrap():
    agent, state = _agent_with_table("q_learning", TABLE)
    state, _ = agent.update(state, _transition(0, 1, 1.0, 0.0, 1), jnp.array([True]))
    np.testing.assert_allclose(_q(state.params)[0, 1], 2.0 + 0.5 * (1.0 - 2.0), rtol=1e-6)


def test_expected_sarsa_update():
    agent, state = _agent_with_table("expected_sarsa", TABLE, epsilon=0.2)
    state, _ = agent.update(state, _transition(0, 0, 0.0, 1.0, 1), jnp.array([False]))
    # E[Q(1, .)] = 0.1 * 3 + 0.9 * 5 = 4.8; Q[0,0] += 0.5 * (4.8 - 1)
    np.testing.assert_allclose(_q(state.params)[0, 0], 1.0 + 0.5 * 3.8, rtol=1e-6)


def test_sarsa_uses_the_next_action_it_takes():
    agent, state = _agent_with_table("sarsa", TABLE, epsilon=0.5)
    state, _ = agent.update(state, _transition(0, 0, 0.0, 1.0, 1), jnp.array([False]))
    a_next = int(state.extra["next_action"][0])
    np.testing.assert_allclose(_q(state.params)[0, 0], 1.0 + 0.5 * (TABLE[1][a_next] - 1.0),
                               rtol=1e-6)
    # act returns that action whatever its own key says...
    for seed in range(5):
        assert int(agent.act(jax.random.key(seed), state, jnp.array([1]))[0]) == a_next
    # ...but after an episode end it samples afresh (greedy in state 1 is action 1).
    state, _ = agent.update(state, _transition(1, a_next, 0.0, 0.0, 2), jnp.array([True]))
    assert not bool(state.extra["has_next"][0])


def test_double_q_learning_updates_one_table():
    agent, state = _agent_with_table("double_q_learning", TABLE)
    q2 = np.array([[0.0, 0.0], [10.0, 1.0], [0.0, 0.0]], np.float32)
    state = state._replace(target_params={"table": jnp.asarray(q2)})
    new, _ = agent.update(state, _transition(0, 1, 1.0, 0.9, 1), jnp.array([False]))
    changed_q1 = not np.allclose(_q(new.params), TABLE)
    changed_q2 = not np.allclose(_q(new.target_params), q2)
    assert changed_q1 != changed_q2
    if changed_q1:  # Q1 selects argmax Q1[1] = 1, Q2 evaluates it: 1 + 0.9 * 1 - 2
        np.testing.assert_allclose(_q(new.params)[0, 1], 2.0 + 0.5 * (1.9 - 2.0), rtol=1e-6)
    else:  # Q2 selects argmax Q2[1] = 0, Q1 evaluates it: 1 + 0.9 * 3 - 0
        np.testing.assert_allclose(_q(new.target_params)[0, 1], 0.5 * 3.7, rtol=1e-6)


def test_greedy_evaluation_acts_on_the_table():
    agent, state = _agent_with_table("q_learning", TABLE, epsilon=1.0)
    actions = agent.act(jax.random.key(0), state, jnp.array([0, 1]), evaluation=True)
    np.testing.assert_array_equal(actions, [1, 1])


def test_bad_settings():
    with pytest.raises(ValueError, match="`rule` must be one of"):
        tabular_agent("dqn", 3, 2)
    with pytest.raises(ValueError, match="`epsilon` must be in"):
        tabular_agent("q_learning", 3, 2, TabularConfig(epsilon=1.5))
    agent = tabular_agent("q_learning", 3, 2)
    with pytest.raises(ValueError, match="`alpha` must be in"):
        agent.init(jax.random.key(0), jnp.int32(0), 1, {"alpha": -0.1})
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        agent.init(jax.random.key(0), jnp.int32(0), 1, {"lr": 0.1})
