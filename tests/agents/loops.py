"""Shared by the agents' tests: one agent trained through the runner in both loops."""

import numpy as np

from agents import run as run_lib


def check_both_loops(name, env, tiny, tmp_path, total_steps, chunk_steps, sweep, jax_envs):
    """Trains `name` on `env` with settings `tiny`: the jax backend with 2 seeds x 2 swept
    values (4 members on `jax_envs` envs, 2 chunks each), then the gym backend (one member,
    one greedy episode); every logged loss is finite."""
    jax_run = run_lib.train(run_lib.RunConfig(
        agent=name, env=env, total_steps=total_steps, num_envs=jax_envs,
        chunk_steps=chunk_steps, seeds=2, sweep=sweep, eval_episodes=0,
        out=str(tmp_path / "jax"), agent_config=tiny), progress=False)
    assert jax_run["backend"] == "jax" and jax_run["members"] == 4
    rows = run_lib.read_metrics(tmp_path / "jax" / "metrics.csv")
    assert len(rows) == 8 and all(np.isfinite(float(r["loss"])) for r in rows)
    gym_run = run_lib.train(run_lib.RunConfig(
        agent=name, env=env, backend="gym", total_steps=total_steps, num_envs=2,
        chunk_steps=chunk_steps, eval_episodes=1, out=str(tmp_path / "gym"),
        agent_config=tiny), progress=False)
    assert gym_run["backend"] == "gym" and gym_run["evaluation"]["episodes"] == 1
    rows = run_lib.read_metrics(tmp_path / "gym" / "metrics.csv")
    assert rows[-1]["loss"] != "" and np.isfinite(float(rows[-1]["loss"]))
