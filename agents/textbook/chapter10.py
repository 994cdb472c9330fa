"""Chapter 10, on-policy control with approximation: Figure 10.2 (Mountain Car).

One-step semi-gradient Sarsa with tile coding (`agents.linear.sarsa_lambda_agent` with
`trace="none"`), trained episode by episode with `agents.episodes.run_episodes`.
"""

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

import envs
from agents import episodes as episodes_lib
from agents import linear
from agents.textbook.results import fmt, make_series
from envs import base as env_base

Array = jax.Array

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
        _, stats = episodes_lib.run_episodes(agent, env, params, lane_keys, episodes, hp)
        return stats.lengths.astype(jnp.float32).reshape(
            len(MOUNTAIN_CAR_ALPHAS), runs, -1).mean(1)

    steps = np.asarray(jax.device_get(compute(key)))
    x = np.arange(1, episodes + 1)
    return [make_series(f"alpha={a}/8", {"method": "sarsa", "alpha": a}, x, steps[i])
            for i, a in enumerate(MOUNTAIN_CAR_ALPHAS)]


def summary_10_2(result):
    return [(f"{s['label']}: steps, episode 1 / mean of 451-500",
             f"{fmt(s['y'][0], 4)} / {fmt(float(np.mean(s['y'][-50:])), 4)}",
             "thousands at first / about 120-140")
            for s in result["series"]]
