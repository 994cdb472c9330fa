"""Statistical facts of the book's experiments with small run counts, and the result schema.

The exact values (Baird's DP weights, sqrt(0.3) at alpha = 0, ...) are tested in tests/tdkit;
here each experiment runs end to end through `agents.experiments.run_experiment` with a
few runs and the qualitative result the book reports is checked. Results are cached per
(experiment, runs) so the schema test and the facts share one computation.
"""

import functools
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents import experiments, prediction


@functools.lru_cache(maxsize=None)
def result(name, runs, seed=0):
    return experiments.run_experiment(name, runs=runs, seed=seed)


def mean_y(series, start=None, stop=None):
    return float(np.mean(np.asarray(series["y"][start:stop], np.float64)))


SCHEMA_RUNS = {"figure-6.5": 50}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(experiments.EXPERIMENTS))
def test_result_schema(name, tmp_path):
    runs = SCHEMA_RUNS.get(name, 2)
    res = result(name, runs)
    assert set(res) == {"experiment", "runs", "seconds", "series"}
    assert res["experiment"] == name and res["runs"] == runs and res["seconds"] > 0
    assert res["series"]
    labels = [s["label"] for s in res["series"]]
    assert len(set(labels)) == len(labels)
    for s in res["series"]:
        assert set(s) == {"label", "params", "x", "y"}
        assert isinstance(s["label"], str) and s["label"]
        assert set(s["params"]) <= set(experiments.PARAM_KEYS) and "method" in s["params"]
        assert len(s["x"]) == len(s["y"]) > 1
        assert all(isinstance(v, float) for v in s["x"])
        assert all(v is None or (isinstance(v, float) and math.isfinite(v)) for v in s["y"])
    if name.startswith(("figure-11", "boyan")):
        assert all("quantity" in s["params"] for s in res["series"])
    paths = experiments.save_result(res, tmp_path, plot=False)
    assert json.loads(paths["json"].read_text()) == res
    table = experiments.format_table(res)
    assert experiments.EXPERIMENTS[name].title in table and "book" in table


def test_example_6_2_td_beats_mc_at_episode_100():
    res = result("example-6.2", 30)
    td = [s for s in res["series"] if s["params"]["method"] == "TD"]
    mc = [s for s in res["series"] if s["params"]["method"] == "MC"]
    assert len(td) == 3 and len(mc) == 4
    assert all(s["x"][-1] == 100.0 and s["y"][0] == pytest.approx(math.sqrt(1 / 18), abs=1e-6)
               for s in td + mc)
    assert min(s["y"][-1] for s in td) < 0.75 * min(s["y"][-1] for s in mc)


@pytest.mark.slow
def test_figure_7_2_intermediate_n_is_best():
    res = result("figure-7.2", 10)
    best = {s["params"]["n"]: min(y for y in s["y"] if y is not None) for s in res["series"]}
    n_best = min(best, key=best.get)
    assert n_best in (2, 4, 8)
    assert best[1] > best[n_best] + 0.03 and best[512] > best[n_best] + 0.1


@pytest.mark.slow
@pytest.mark.parametrize("name", ["figure-12.3", "figure-12.6", "figure-12.8"])
def test_figures_12_intermediate_lambda_is_best(name):
    res = result(name, 10)
    best = {s["params"]["lambda"]: min(y for y in s["y"] if y is not None)
            for s in res["series"]}
    lam_best = min(best, key=best.get)
    assert 0.4 <= lam_best <= 0.9
    assert best[0.0] > best[lam_best] + 0.03 and best[1.0] > best[lam_best] + 0.1


def test_example_6_6_q_learning_is_below_sarsa_online():
    res = result("example-6.6", 20)
    sarsa = experiments.find_series(res, method="sarsa")
    q = experiments.find_series(res, method="q_learning")
    assert mean_y(q, -100) < mean_y(sarsa, -100) - 10.0
    assert -35.0 < mean_y(sarsa, -100) < -15.0 and -65.0 < mean_y(q, -100) < -35.0


def test_figure_6_5_double_q_is_below_q_learning():
    res = result("figure-6.5", 400)
    q = experiments.find_series(res, method="q_learning")
    dq = experiments.find_series(res, method="double_q_learning")
    assert abs(q["y"][0] - 50.0) < 10.0  # ties broken at random on the first episode
    assert max(q["y"]) > 70.0
    assert mean_y(dq, 100) < mean_y(q, 100) - 3.0
    assert mean_y(dq, 200) < 10.0


def test_baird_semi_gradient_td_diverges_for_every_seed_while_tdc_does_not():
    task = experiments.baird_task()
    streams = experiments.baird_streams(task, jax.random.key(7), 8, 1000)
    max_abs = lambda w: jnp.max(jnp.abs(w))
    td = experiments.sweep_predictor(prediction.make_predictor("td"), task.w0, [], streams,
                                     max_abs, 1000, fixed={"alpha": 0.01})
    tdc = experiments.sweep_predictor(prediction.make_predictor("tdc"), task.w0, [], streams,
                                      max_abs, 1000, fixed={"alpha": 0.005, "beta": 0.05})
    assert np.all(np.asarray(td[:, -1]) > 100.0)  # from max |w0| = 10
    assert np.all(np.asarray(tdc).max(axis=1) <= 10.0 + 1e-4)


def test_example_6_5_windy_sarsa_completes_about_170_episodes_in_8000_steps():
    res = result("example-6.5", 10)
    s = res["series"][0]
    assert s["x"][-1] == 8000.0 and s["y"][0] == 0.0
    assert 140.0 < s["y"][-1] < 195.0
    assert np.all(np.diff(s["y"]) >= 0)


@pytest.mark.slow
def test_figure_10_2_mountain_car_steps_per_episode_fall():
    res = result("figure-10.2", 2)
    for s in res["series"]:
        assert s["y"][0] > 500.0
        assert mean_y(s, -50) < 200.0


def test_boyan_lstd_learns_fastest():
    res = result("boyan-lstd", 10)
    lstd = experiments.find_series(res, method="lstd")
    others = [s for s in res["series"] if s["params"]["method"] != "lstd"]
    assert len(others) == 5
    assert all(lstd["y"][10] < s["y"][10] for s in others)
    assert all(s["y"][-1] < 0.2 * s["y"][0] for s in res["series"])


def test_run_episodes_records_every_episode_of_every_run():
    import envs
    from agents import tabular

    env, params = envs.make("CliffWalking-v0")
    agent = tabular.tabular_agent("q_learning", 48, 4)
    stats = jax.jit(lambda k: experiments.run_episodes(
        agent, env, params, k, {"alpha": 0.5}, 20))(jax.random.split(jax.random.key(0), 3))
    lengths, returns = np.asarray(stats.lengths), np.asarray(stats.returns)
    assert lengths.shape == (3, 20) and np.all(lengths >= 13)
    assert np.all(returns <= -13.0)  # the optimal return
    np.testing.assert_array_equal(stats.total_steps, lengths.sum(axis=1))


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown experiment"):
        experiments.run_experiment("figure-99")
    with pytest.raises(ValueError, match="runs"):
        experiments.run_experiment("example-6.2", runs=0)
    with pytest.raises(ValueError, match="params keys"):
        experiments.make_series("x", {"beta": 1.0}, [0.0], [1.0])
    with pytest.raises(ValueError, match="same length"):
        experiments.make_series("x", {"method": "td"}, [0.0, 1.0], [1.0])
