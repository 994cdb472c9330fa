"""Tests for tdkit.emphatic against the book's equations written as NumPy loops here."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tdkit import emphatic

linear_v = lambda w, x: jnp.dot(w, x)


def random_stream(rng, lengths, f=4):
    """Episodes back to back: x_tm1, r, discount (0 at each end), x_t, rho, interest."""
    x0, r, d, x1, rho, interest = [], [], [], [], [], []
    for n in lengths:
        xs = rng.normal(size=(n + 1, f))
        x0.append(xs[:-1])
        x1.append(xs[1:])
        r.append(rng.normal(size=n))
        dd = np.full(n, 0.9)
        dd[-1] = 0.0
        d.append(dd)
        rho.append(rng.choice([0.0, 0.5, 2.0], size=n))
        interest.append(rng.choice([0.0, 1.0, 0.5], size=n))
    return tuple(np.concatenate(a) for a in (x0, r, d, x1, rho, interest))


def np_etd_lambda(w, x0, r, d, x1, rho, interest, alpha, lam):
    """S&B Section 12.11: F_t = rho_{t-1} gamma_t F_{t-1} + I_t, M_t = lam I_t + (1-lam) F_t,
    z_t = rho_t (gamma_t lam z_{t-1} + M_t x_t), w += alpha delta_t z_t, where gamma_t is the
    discount INTO S_t (0 at an episode start)."""
    w = w.copy()
    f_prev, z = 0.0, np.zeros_like(w)
    rho_prev, gamma_in = 0.0, 0.0
    for t in range(len(r)):
        f = rho_prev * gamma_in * f_prev + interest[t]
        m = lam * interest[t] + (1 - lam) * f
        z = rho[t] * (gamma_in * lam * z + m * x0[t])
        delta = r[t] + d[t] * w @ x1[t] - w @ x0[t]
        w = w + alpha * delta * z
        f_prev, rho_prev, gamma_in = f, rho[t], d[t]
    return w


def np_one_step_etd(w, x0, r, d, x1, rho, interest, alpha):
    """S&B (11.8): M_t = gamma rho_{t-1} M_{t-1} + I_t, w += alpha M_t rho_t delta_t x_t."""
    w = w.copy()
    m_prev, rho_prev, gamma_in = 0.0, 0.0, 0.0
    for t in range(len(r)):
        m = gamma_in * rho_prev * m_prev + interest[t]
        delta = r[t] + d[t] * w @ x1[t] - w @ x0[t]
        w = w + alpha * m * rho[t] * delta * x0[t]
        m_prev, rho_prev, gamma_in = m, rho[t], d[t]
    return w


def test_emphasis_hand_values_on_policy():
    """rho = 1, interest 1, gamma 0.5: M = 1, 1.5, 1.75 (followon 0.5, 0.75, 0.875)."""
    followon = jnp.zeros(())
    ms = []
    for _ in range(3):
        m, followon = emphatic.emphasis(followon, 1.0, 0.5)
        ms.append(float(m))
    np.testing.assert_allclose(ms, [1.0, 1.5, 1.75])
    np.testing.assert_allclose(followon, 0.875)
    # lambda mixes interest and follow-on: M = 0.5 * 1 + 0.5 * (0.875 + 1).
    m, _ = emphatic.emphasis(followon, 1.0, 0.5, 1.0, 0.5)
    np.testing.assert_allclose(m, 1.4375)


def test_one_step_etd_matches_book_loop():
    rng = np.random.default_rng(0)
    with jax.enable_x64(True):
        stream = random_stream(rng, (5, 1, 7))
        x0, r, d, x1, rho, interest = stream
        w0 = rng.normal(size=4)
        expected = np_one_step_etd(w0, *stream, 0.05)
        step = jax.jit(emphatic.emphatic_td_update)
        w, followon = jnp.asarray(w0), jnp.zeros(())
        for t in range(len(r)):
            w, followon = step(w, followon, x0[t], r[t], d[t], x1[t], rho[t], 0.05, interest[t])
        np.testing.assert_allclose(w, expected, rtol=1e-12, atol=1e-12)
        assert float(followon) == 0.0  # the stream ends with a terminal transition


@pytest.mark.parametrize("lam", [0.0, 0.4, 0.9, 1.0])
def test_etd_lambda_matches_book_loop(lam):
    rng = np.random.default_rng(1)
    with jax.enable_x64(True):
        stream = random_stream(rng, (6, 3, 8))
        x0, r, d, x1, rho, interest = stream
        w0 = rng.normal(size=4)
        expected = np_etd_lambda(w0, *stream, 0.05, lam)

        def body(carry, inp):
            w, state = carry
            return emphatic.emphatic_td_lambda_update(w, state, *inp[:5], 0.05, lam, inp[5]), None

        w = jnp.asarray(w0)
        (w, state), _ = jax.lax.scan(
            body, (w, emphatic.init_emphatic(w)), (x0, r, d, x1, rho, interest))
        np.testing.assert_allclose(w, expected, rtol=1e-12, atol=1e-12)
        if lam == 0.0:  # ETD(0) is one-step emphatic TD.
            np.testing.assert_allclose(
                w, np_one_step_etd(w0, *stream, 0.05), rtol=1e-12, atol=1e-12)


def test_loss_form_gives_exactly_the_linear_update():
    rng = np.random.default_rng(2)
    with jax.enable_x64(True):
        followon = jnp.asarray(0.0)
        w = jnp.asarray(rng.normal(size=4))
        for _ in range(4):
            x, xn = rng.normal(size=4), rng.normal(size=4)
            r, rho, interest = rng.normal(), 1.5, 0.7
            m, _ = emphatic.emphasis(followon, rho, 0.9, interest)
            g = jax.grad(emphatic.emphatic_td_loss, argnums=1)(
                linear_v, w, x, r, 0.9, xn, rho, m)
            expected, followon_next = emphatic.emphatic_td_update(
                w, followon, x, r, 0.9, xn, rho, 0.1, interest)
            np.testing.assert_allclose(w - 0.1 * g, expected, rtol=0, atol=1e-14)
            w, followon = expected, followon_next


def test_loss_stops_gradient_through_emphasis_and_target():
    w = jnp.array([1.0, -1.0])
    x, xn = jnp.array([1.0, 2.0]), jnp.array([0.5, 0.5])
    grad_m = jax.grad(lambda m: emphatic.emphatic_td_loss(linear_v, w, x, 1.0, 0.9, xn, 1.0, m))
    assert float(grad_m(2.0)) == 0.0
    grad_xn = jax.grad(
        lambda o: emphatic.emphatic_td_loss(linear_v, w, x, 1.0, 0.9, o, 1.0, 2.0))
    np.testing.assert_array_equal(grad_xn(xn), 0.0)
    residual = jax.grad(lambda o: emphatic.emphatic_td_loss(
        linear_v, w, x, 1.0, 0.9, o, 1.0, 2.0, stop_target_gradients=False))
    # d/dx' of 0.5 M (r + 0.9 w.x' - w.x)^2 = M delta 0.9 w, delta = 1 + 0 + 1 = 2.
    np.testing.assert_allclose(residual(xn), 2.0 * 2.0 * 0.9 * w, rtol=1e-6)


def test_vmap_over_step_sizes_compiles_once_and_bad_shapes():
    x0 = jnp.ones((5, 3))
    r, d, rho = jnp.ones(5), jnp.full(5, 0.9), jnp.ones(5)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def run(alpha, lam):
        def body(carry, inp):
            return emphatic.emphatic_td_lambda_update(*carry, *inp, alpha, lam), None
        w = jnp.zeros(3)
        (w, _), _ = jax.lax.scan(body, (w, emphatic.init_emphatic(w)), (x0, r, d, x0, rho))
        return w

    out = jax.vmap(run)(jnp.array([0.01, 0.02]), jnp.array([0.0, 0.5]))
    assert out.shape == (2, 3)
    jax.vmap(run)(jnp.array([0.03, 0.02]), jnp.array([0.1, 0.5]))
    with pytest.raises(AssertionError, match="same shape"):
        emphatic.emphatic_td_update(jnp.zeros(3), 0.0, jnp.zeros(2), 0.0, 0.9, jnp.zeros(3),
                                    1.0, 0.1)
    with pytest.raises(AssertionError, match="`followon` must have rank 0"):
        emphatic.emphatic_td_update(jnp.zeros(3), jnp.zeros(3), jnp.zeros(3), 0.0, 0.9,
                                    jnp.zeros(3), 1.0, 0.1)
