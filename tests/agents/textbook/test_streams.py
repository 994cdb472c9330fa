"""Streams of episodes: recorded episode ends, the prefix property, features, the walks."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents.textbook import streams


def test_sample_streams_records_the_first_episode_ends_and_extends_as_a_prefix():
    env, params, _, _, _ = streams.random_walk_task(5)
    keys = jax.random.split(jax.random.key(3), 4)
    short = jax.jit(lambda k: streams.sample_streams(env, params, k, 200, episodes=5))(keys)
    long = jax.jit(lambda k: streams.sample_streams(env, params, k, 400, episodes=5))(keys)
    for name in ("obs", "r_t", "terminated", "record"):
        np.testing.assert_array_equal(np.asarray(long[name])[:, :short[name].shape[1]],
                                      np.asarray(short[name]))
    terminated, record = np.asarray(short["terminated"]), np.asarray(short["record"])
    assert short["obs"].shape == (4, 201)
    np.testing.assert_array_equal(short["episodes"], terminated.sum(axis=1))
    for run in range(4):
        ends = np.flatnonzero(terminated[run])
        np.testing.assert_array_equal(np.flatnonzero(record[run]), ends[:5])
        # Every episode starts in the centre state (3 of 0..6) and leaves from 1 or 5.
        obs = np.asarray(short["obs"])[run]
        assert obs[0] == 3 and np.all(obs[ends + 1] == 3)
        assert np.all(np.isin(obs[ends], (1, 5)))
    np.testing.assert_array_equal(short["rho_tm1"], 1.0)


def test_fused_streams_doubles_the_length_until_every_run_has_its_episodes():
    env, params, _, _, _ = streams.random_walk_task(19)

    def last_end(data):  # the step of each run's 10th episode end, independent of the length
        length = data["record"].shape[1]
        return jnp.max(data["record"] * jnp.arange(1, length + 1), axis=1)

    key = jax.random.key(0)
    short = streams.fused_streams(env, params, key, 6, 10, last_end, 8)
    long = streams.fused_streams(env, params, key, 6, 10, last_end, 1 << 14)
    np.testing.assert_array_equal(short, long)
    assert np.all(short > 8 * 10)  # 10 episodes of at least 9 steps


def test_feature_streams_one_hot_and_discount():
    data = {"obs": jnp.array([[3, 2, 3]]), "r_t": jnp.array([[0.0, 1.0]]),
            "terminated": jnp.array([[False, True]]), "rho_tm1": jnp.ones((1, 2)),
            "record": jnp.array([[False, True]])}
    s = streams.feature_streams(data, 5, gamma=0.9)
    np.testing.assert_array_equal(s.xs[0], np.eye(5, dtype=np.float32)[[3, 2, 3]])
    np.testing.assert_allclose(s.discount_t[0], [0.9, 0.0])
    assert s.record.dtype == jnp.bool_


@pytest.mark.parametrize("num_states,start,true_rms", [(5, 0.5, math.sqrt(1 / 18)),
                                                        (19, 0.0, math.sqrt(0.3))])
def test_random_walk_rms_by_hand(num_states, start, true_rms):
    _, _, table, inner, rms = streams.random_walk_task(num_states)
    assert table == num_states + 2 and list(inner) == list(range(1, num_states + 1))
    w = np.zeros(table, np.float32)
    w[inner] = start
    assert float(rms(w)) == pytest.approx(true_rms, rel=1e-6)
    assert float(rms(jnp.asarray(w))) == pytest.approx(true_rms, rel=1e-6)
    with pytest.raises(ValueError, match="5 or 19"):
        streams.random_walk_task(7)
