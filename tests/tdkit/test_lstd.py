"""Tests for tdkit.lstd against NumPy sums and inverses written here."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tdkit import lstd
from tests.tdkit import mdps


def np_lstd_matrices(x0, r, d, x1, lam, eps):
    """A = eps I + sum z (x - d x')^T, b = sum r z with z = gamma_in lam z + x."""
    f = x0.shape[1]
    A, b, z = eps * np.eye(f), np.zeros(f), np.zeros(f)
    gamma_in = 0.0
    for t in range(len(r)):
        z = gamma_in * lam * z + x0[t]
        A += np.outer(z, x0[t] - d[t] * x1[t])
        b += r[t] * z
        gamma_in = d[t]
    return A, b


def random_stream(rng, lengths, f=4):
    x0, r, d, x1 = [], [], [], []
    for n in lengths:
        xs = rng.normal(size=(n + 1, f))
        x0.append(xs[:-1])
        x1.append(xs[1:])
        r.append(rng.normal(size=n))
        dd = np.full(n, 0.9)
        dd[-1] = 0.0
        d.append(dd)
    return tuple(np.concatenate(a) for a in (x0, r, d, x1))


@pytest.mark.parametrize("lam", [0.0, 0.7])
def test_recursive_sherman_morrison_and_batch_match_numpy_inverse(lam):
    rng = np.random.default_rng(0)
    with jax.enable_x64(True):
        x0, r, d, x1 = random_stream(rng, (7, 2, 9))
        A, b = np_lstd_matrices(x0, r, d, x1, lam, eps=0.5)
        w_expected = np.linalg.solve(A, b)

        def body(state, inp):
            return lstd.lstd_update(state, *inp, lam), None

        state, _ = jax.lax.scan(body, lstd.lstd_init(4, 0.5, jnp.float64), (x0, r, d, x1))
        np.testing.assert_allclose(state.A_inv, np.linalg.inv(A), rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(state.b, b, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(lstd.lstd_weights(state), w_expected, rtol=1e-9, atol=1e-10)
        np.testing.assert_array_equal(state.z, 0.0)  # the stream ends at a termination

        A0, b0 = lstd.lstd_statistics(x0, r, d, x1, lam)
        np.testing.assert_allclose(A0 + 0.5 * np.eye(4), A, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(b0, b, rtol=1e-12, atol=1e-12)
        w_batch = lstd.lstd_solve(x0, r, d, x1, lam, 0.5)
        np.testing.assert_allclose(w_batch, w_expected, rtol=1e-10, atol=1e-10)


def test_boyan_lstd_on_every_transition_gives_w_star_exactly():
    x0, r, d, x1 = mdps.boyan_transitions()
    with jax.enable_x64(True):
        np.testing.assert_allclose(
            lstd.lstd_solve(x0, r, d, x1), mdps.BOYAN_W_STAR, rtol=0, atol=1e-10)

        def body(state, inp):
            return lstd.lstd_update(state, *inp), None

        state, _ = jax.lax.scan(body, lstd.lstd_init(4, 1e-9, jnp.float64), (x0, r, d, x1))
        np.testing.assert_allclose(
            lstd.lstd_weights(state), mdps.BOYAN_W_STAR, rtol=0, atol=1e-5)


def test_boyan_lstd_lambda_on_sampled_episodes_near_w_star():
    rng = np.random.default_rng(1)
    eps = [mdps.sample_boyan(rng) for _ in range(1000)]
    x0 = np.concatenate([e[0][:-1] for e in eps])
    x1 = np.concatenate([e[0][1:] for e in eps])
    r = np.concatenate([e[1] for e in eps])
    d = np.concatenate([e[2] for e in eps])
    with jax.enable_x64(True):
        solve = jax.jit(lstd.lstd_solve)
        for lam in (0.0, 0.5, 1.0):
            w = solve(x0, r, d, x1, lam, 1e-6)
            np.testing.assert_allclose(w, mdps.BOYAN_W_STAR, rtol=0, atol=0.5)


def test_lstd_vmaps_over_lambda_and_compiles_once():
    rng = np.random.default_rng(2)
    x0, r, d, x1 = (jnp.asarray(a, jnp.float32) for a in random_stream(rng, (5, 4)))

    @jax.jit
    @chex.assert_max_traces(n=1)
    def run(lam):
        def body(state, inp):
            return lstd.lstd_update(state, *inp, lam), None
        state, _ = jax.lax.scan(body, lstd.lstd_init(4, 1.0), (x0, r, d, x1))
        return lstd.lstd_weights(state)

    out = jax.vmap(run)(jnp.array([0.0, 0.5, 0.9]))
    assert out.shape == (3, 4) and out.dtype == jnp.float32
    chex.assert_tree_all_finite(out)
    jax.vmap(run)(jnp.array([0.1, 0.2, 0.3]))


def test_bad_arguments():
    with pytest.raises(ValueError, match="`epsilon` must be > 0"):
        lstd.lstd_init(3, 0.0)
    with pytest.raises(ValueError, match="`num_features`"):
        lstd.lstd_init(0, 1.0)
    state = lstd.lstd_init(3, 1.0)
    with pytest.raises(AssertionError, match="same shape"):
        lstd.lstd_update(state, jnp.zeros(2), 0.0, 1.0, jnp.zeros(2))
    with pytest.raises(AssertionError, match="same length"):
        lstd.lstd_solve(jnp.zeros((4, 3)), jnp.zeros(5), jnp.zeros(5), jnp.zeros((4, 3)))
