"""n-step accumulator against a plain-loop oracle, with terminations and truncations."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tdkit
from tdkit.nstep import nstep_accumulator


def _stream(seed, steps=40, num_envs=3, gamma=0.9):
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(steps, num_envs, 2)).astype(np.float32)
    obs_t = rng.normal(size=(steps, num_envs, 2)).astype(np.float32)
    r = rng.normal(size=(steps, num_envs)).astype(np.float32)
    terminated = rng.uniform(size=(steps, num_envs)) < 0.1
    truncated = (rng.uniform(size=(steps, num_envs)) < 0.1) & ~terminated
    a = rng.integers(0, 4, size=(steps, num_envs)).astype(np.int32)
    d = (gamma * (1 - terminated)).astype(np.float32)
    return obs, a, r, d, obs_t, terminated | truncated


def _oracle(k, e, n, obs, a, r, d, obs_t, last):
    """The n-step transition of step k of env e, written out as a loop."""
    total, scale = 0.0, 1.0
    j = k
    while True:
        total += scale * r[j, e]
        scale *= d[j, e]
        if last[j, e] or j == k + n - 1:
            break
        j += 1
    return obs[k, e], a[k, e], total, scale, obs_t[j, e]


@pytest.mark.parametrize("n", [1, 3, 5])
def test_matches_oracle(n):
    obs, a, r, d, obs_t, last = _stream(n)
    steps, num_envs = r.shape
    chex.clear_trace_counter()
    acc = nstep_accumulator(n)
    first = tdkit.Transition(obs[0], a[0], r[0], d[0], obs_t[0])
    state = acc.init(first)
    push = jax.jit(chex.assert_max_traces(acc.push, n=1))
    for t in range(steps):
        state, out, valid = push(
            state, tdkit.Transition(obs[t], a[t], r[t], d[t], obs_t[t]), last[t])
        assert bool(valid) == (t >= n - 1)
        if not valid:
            continue
        k = t - n + 1
        for e in range(num_envs):
            o, act, ret, disc, o_t = _oracle(k, e, n, obs, a, r, d, obs_t, last)
            np.testing.assert_allclose(out.obs_tm1[e], o)
            assert int(out.a_tm1[e]) == act
            np.testing.assert_allclose(out.r_t[e], ret, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(out.discount_t[e], disc, rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(out.obs_t[e], o_t)


def test_termination_and_truncation_by_hand():
    # One env, n = 3, gamma = 0.5. Steps: r = 1, 2 (terminates), 4, 8 (truncated), 16.
    n, g = 3, 0.5
    rs = [1.0, 2.0, 4.0, 8.0, 16.0]
    ds = [g, 0.0, g, g, g]
    lasts = [False, True, False, True, False]
    acc = nstep_accumulator(n)
    tr = lambda i: tdkit.Transition(
        jnp.array([float(i)]), jnp.array([0]), jnp.array([rs[i]]), jnp.array([ds[i]]),
        jnp.array([10.0 + i]))
    state = acc.init(tr(0))
    outs = []
    for i in range(5):
        state, out, valid = acc.push(state, tr(i), jnp.array([lasts[i]]))
        if valid:
            outs.append(out)
    # Step 0: 1 + 0.5 * 2, then termination: discount 0.5 * 0 = 0, obs_t from step 1.
    np.testing.assert_allclose([outs[0].r_t[0], outs[0].discount_t[0], outs[0].obs_t[0]],
                               [2.0, 0.0, 11.0])
    # Step 1: terminal step alone: r = 2, discount 0.
    np.testing.assert_allclose([outs[1].r_t[0], outs[1].discount_t[0], outs[1].obs_t[0]],
                               [2.0, 0.0, 11.0])
    # Step 2: 4 + 0.5 * 8, truncated at step 3: bootstrap with 0.25 from the final obs 13.
    np.testing.assert_allclose([outs[2].r_t[0], outs[2].discount_t[0], outs[2].obs_t[0]],
                               [8.0, 0.25, 13.0])


def test_rejects_bad_n():
    with pytest.raises(ValueError, match="`n` must be a Python int >= 1"):
        nstep_accumulator(0)
