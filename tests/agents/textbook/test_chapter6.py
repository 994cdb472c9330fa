"""Chapter 6: the qualitative results the book reports, with small run counts."""

import math

import jax
import numpy as np
import pytest

import envs
from agents import textbook
from agents.base import AgentState
from agents.textbook import chapter6


def mean_y(series, start=None, stop=None):
    return float(np.mean(np.asarray(series["y"][start:stop], np.float64)))


def test_example_6_2_td_beats_mc_at_episode_100(experiment_result):
    res = experiment_result("example-6.2", 30)
    td = [s for s in res["series"] if s["params"]["method"] == "TD"]
    mc = [s for s in res["series"] if s["params"]["method"] == "MC"]
    assert len(td) == 3 and len(mc) == 4
    assert all(s["x"][-1] == 100.0 and s["y"][0] == pytest.approx(math.sqrt(1 / 18), abs=1e-6)
               for s in td + mc)
    assert min(s["y"][-1] for s in td) < 0.75 * min(s["y"][-1] for s in mc)


def test_example_6_5_windy_sarsa_completes_about_170_episodes_in_8000_steps(
        experiment_result):
    res = experiment_result("example-6.5", 10)
    s = res["series"][0]
    assert s["x"][-1] == 8000.0 and s["y"][0] == 0.0
    assert 140.0 < s["y"][-1] < 195.0
    assert np.all(np.diff(s["y"]) >= 0)


def test_example_6_6_q_learning_is_below_sarsa_online(experiment_result):
    res = experiment_result("example-6.6", 20)
    sarsa = textbook.find_series(res, method="sarsa")
    q = textbook.find_series(res, method="q_learning")
    assert mean_y(q, -100) < mean_y(sarsa, -100) - 10.0
    assert -35.0 < mean_y(sarsa, -100) < -15.0 and -65.0 < mean_y(q, -100) < -35.0


def test_figure_6_5_double_q_is_below_q_learning(experiment_result):
    res = experiment_result("figure-6.5", 400)
    q = textbook.find_series(res, method="q_learning")
    dq = textbook.find_series(res, method="double_q_learning")
    assert abs(q["y"][0] - 50.0) < 10.0  # ties broken at random on the first episode
    assert max(q["y"]) > 70.0
    assert mean_y(dq, 100) < mean_y(q, 100) - 3.0
    assert mean_y(dq, 200) < 10.0


def test_masked_epsilon_greedy_act_picks_only_valid_actions():
    env, _ = envs.make("MaximizationBias-v0")
    act = chapter6.masked_epsilon_greedy_act(env.extras["valid_actions"], 0.1)
    table = np.zeros((3, env.num_actions), np.float32)
    table[0, 1] = 1.0  # "right" is greedy in A
    state = AgentState({"table": table}, {"table": table}, (), (), 0, None, {}, ())
    obs = np.zeros(4000, np.int32)  # all in A
    actions = np.asarray(jax.jit(act)(jax.random.key(0), state, obs))
    assert set(np.unique(actions)) == {0, 1}
    # P(left) = epsilon / 2 = 0.05 (binomial standard deviation 0.0034).
    assert abs(np.mean(actions == 0) - 0.05) < 0.015
    in_b = np.asarray(act(jax.random.key(1), state, np.ones(2000, np.int32)))
    assert len(np.unique(in_b)) == env.num_actions  # every action valid in B, random ties
