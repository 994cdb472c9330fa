"""Tests for tdkit.gradient_td: off-policy TD(0), TDC, GTD2, TDRC (linear updates and loss
forms). Expected values are computed by hand or by NumPy loops written here."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tdkit import gradient_td as gtd
from tests.tdkit import mdps

linear_v = lambda w, x: jnp.dot(w, x)

# One transition used for the hand-computed values:
# w = (1, 2), h = (0.5, -1), x = (1, 0), x' = (0, 1), r = 1, discount = 0.9, rho = 2.
# delta = 1 + 0.9 * 2 - 1 = 1.8, x.h = 0.5.
W, H = jnp.array([1.0, 2.0]), jnp.array([0.5, -1.0])
X_TM1, X_T = jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0])
R, D, RHO = 1.0, 0.9, 2.0


def test_off_policy_td_update_hand_values():
    # w += 0.1 * 2 * 1.8 * x = (0.36, 0).
    out = gtd.off_policy_td_update(W, X_TM1, R, D, X_T, RHO, 0.1)
    np.testing.assert_allclose(out, [1.36, 2.0], rtol=1e-6)


def test_tdc_update_hand_values():
    # w += 0.1 * 2 * (1.8 x - 0.9 * 0.5 x') = (0.36, -0.09); h += 0.2 * 2 * (1.8 - 0.5) x.
    out = gtd.tdc_update(gtd.GTDState(W, H), X_TM1, R, D, X_T, RHO, 0.1, 0.2)
    np.testing.assert_allclose(out.w, [1.36, 1.91], rtol=1e-6)
    np.testing.assert_allclose(out.h, [1.02, -1.0], rtol=1e-6)


def test_gtd2_update_hand_values():
    # w += 0.1 * 2 * 0.5 * (x - 0.9 x') = (0.1, -0.09); h as TDC.
    out = gtd.gtd2_update(gtd.GTDState(W, H), X_TM1, R, D, X_T, RHO, 0.1, 0.2)
    np.testing.assert_allclose(out.w, [1.1, 1.91], rtol=1e-6)
    np.testing.assert_allclose(out.h, [1.02, -1.0], rtol=1e-6)


def test_tdrc_update_hand_values():
    # w as TDC; h += 1 * 0.1 * ((2 * 1.8 - 0.5) x - 1 * h) = 0.1 * (2.6, 1).
    out = gtd.tdrc_update(gtd.GTDState(W, H), X_TM1, R, D, X_T, RHO, 0.1)
    np.testing.assert_allclose(out.w, [1.36, 1.91], rtol=1e-6)
    np.testing.assert_allclose(out.h, [0.76, -0.9], rtol=1e-6)
    out = gtd.tdrc_update(gtd.GTDState(W, H), X_TM1, R, D, X_T, RHO, 0.1, eta=2.0,
                          beta_reg=0.0)
    np.testing.assert_allclose(out.h, [0.5 + 0.2 * 3.1, -1.0], rtol=1e-6)


def test_tdrc_without_regulariser_on_policy_is_tdc():
    rng = np.random.default_rng(0)
    with jax.enable_x64(True):
        w, h, x, xn = (jnp.asarray(rng.normal(size=3)) for _ in range(4))
        a = gtd.tdrc_update(gtd.GTDState(w, h), x, 0.3, 0.9, xn, 1.0, 0.1, eta=0.5, beta_reg=0.0)
        b = gtd.tdc_update(gtd.GTDState(w, h), x, 0.3, 0.9, xn, 1.0, 0.1, 0.05)
        chex.assert_trees_all_close(a, b, rtol=0, atol=1e-15)


def test_gtd_init_zero_aux_on_pytrees():
    state = gtd.gtd_init({"a": jnp.ones(3), "b": jnp.ones((2, 2))})
    chex.assert_trees_all_equal(state.h, {"a": jnp.zeros(3), "b": jnp.zeros((2, 2))})


def random_transition(rng, f=5):
    return dict(x_tm1=rng.normal(size=f), r_t=rng.normal(), discount_t=0.9,
                x_t=rng.normal(size=f), rho_tm1=float(rng.uniform(0.0, 3.0)))


def test_loss_forms_give_exactly_the_linear_updates():
    """w - alpha grad_w(loss) and h - beta grad_h(loss) are the explicit linear updates."""
    rng = np.random.default_rng(1)
    alpha, beta, beta_reg, eta = 0.07, 0.3, 0.6, 1.5
    with jax.enable_x64(True):
        for _ in range(5):
            w, h = jnp.asarray(rng.normal(size=5)), jnp.asarray(rng.normal(size=5))
            tr = random_transition(rng)
            args = (tr["x_tm1"], tr["r_t"], tr["discount_t"], tr["x_t"], tr["rho_tm1"])

            g_w = jax.grad(gtd.td_loss, argnums=1)(linear_v, w, *args)
            expected = gtd.off_policy_td_update(w, *args, alpha)
            np.testing.assert_allclose(w - alpha * g_w, expected, rtol=0, atol=1e-14)

            for loss, update in ((gtd.tdc_loss, gtd.tdc_update),
                                 (gtd.gtd2_loss, gtd.gtd2_update)):
                g_w, g_h = jax.grad(loss, argnums=(1, 2))(linear_v, w, h, *args)
                expected = update(gtd.GTDState(w, h), *args, alpha, beta)
                np.testing.assert_allclose(w - alpha * g_w, expected.w, rtol=0, atol=1e-14)
                np.testing.assert_allclose(h - beta * g_h, expected.h, rtol=0, atol=1e-14)

            g_w, g_h = jax.grad(gtd.tdrc_loss, argnums=(1, 2))(
                linear_v, w, h, *args, beta_reg=beta_reg)
            expected = gtd.tdrc_update(gtd.GTDState(w, h), *args, alpha, eta, beta_reg)
            np.testing.assert_allclose(w - alpha * g_w, expected.w, rtol=0, atol=1e-14)
            np.testing.assert_allclose(h - eta * alpha * g_h, expected.h, rtol=0, atol=1e-14)


def mlp():
    k1, k2 = jax.random.split(jax.random.key(3))
    params = {"W": jax.random.normal(k1, (3, 8)), "v": jax.random.normal(k2, (8,))}
    return params, (lambda p, o: jnp.tanh(o @ p["W"]) @ p["v"])


def test_loss_forms_nonlinear_gradients_from_manual_value_gradients():
    """With a network, -grad is the TDC / GTD2 / TD direction built from grad v by hand;
    stop-gradients keep the target side and the aux side out of each other's gradient."""
    params, v_fn = mlp()
    h_params = jax.tree.map(lambda p: 0.3 * p[::-1], params)
    obs = jax.random.normal(jax.random.key(4), (2, 3))
    r, d, rho = 0.5, 0.9, 1.7
    gv_tm1 = jax.grad(v_fn)(params, obs[0])
    gv_t = jax.grad(v_fn)(params, obs[1])
    gh = jax.grad(v_fn)(h_params, obs[0])
    delta = r + d * v_fn(params, obs[1]) - v_fn(params, obs[0])
    delta_hat = v_fn(h_params, obs[0])
    close = lambda a, b: chex.assert_trees_all_close(a, b, rtol=1e-4, atol=1e-5)

    g = jax.grad(gtd.td_loss, argnums=1)(v_fn, params, obs[0], r, d, obs[1], rho)
    close(g, jax.tree.map(lambda a: -rho * delta * a, gv_tm1))

    g_w, g_h = jax.grad(gtd.tdc_loss, argnums=(1, 2))(
        v_fn, params, h_params, obs[0], r, d, obs[1], rho)
    close(g_w, jax.tree.map(lambda a, b: -rho * (delta * a - d * delta_hat * b), gv_tm1, gv_t))
    close(g_h, jax.tree.map(lambda a: -rho * (delta - delta_hat) * a, gh))

    g_w, g_h = jax.grad(gtd.gtd2_loss, argnums=(1, 2))(
        v_fn, params, h_params, obs[0], r, d, obs[1], rho)
    close(g_w, jax.tree.map(lambda a, b: -rho * delta_hat * (a - d * b), gv_tm1, gv_t))
    close(g_h, jax.tree.map(lambda a: -rho * (delta - delta_hat) * a, gh))

    g_w, g_h = jax.grad(gtd.tdrc_loss, argnums=(1, 2))(
        v_fn, params, h_params, obs[0], r, d, obs[1], rho, beta_reg=0.5)
    close(g_h, jax.tree.map(lambda a, p: -(rho * delta - delta_hat) * a + 0.5 * p, gh, h_params))


def test_td_loss_stop_target_gradients_flag():
    """Target side: zero gradient by default, the residual gradient with the flag off."""
    grad_obs_t = lambda stop: jax.grad(gtd.td_loss, argnums=5)(
        linear_v, W, X_TM1, R, D, X_T, RHO, stop)
    np.testing.assert_array_equal(grad_obs_t(True), 0.0)
    # loss = 0.5 rho (r + 0.9 w.x' - w.x)^2: d/dx' = rho delta 0.9 w, rho delta = 2 * 1.8.
    np.testing.assert_allclose(grad_obs_t(False), 3.6 * 0.9 * W, rtol=1e-6)
    g_w = jax.grad(gtd.td_loss, argnums=1)(linear_v, W, X_TM1, R, D, X_T, RHO, False)
    np.testing.assert_allclose(g_w, -3.6 * (X_TM1 - 0.9 * X_T), rtol=1e-6)


def test_separate_aux_function_h_fn():
    """h_fn lets the auxiliary predictor have its own architecture (here linear in obs)."""
    params, v_fn = mlp()
    h = jnp.array([0.2, -0.1, 0.4])
    obs = jax.random.normal(jax.random.key(5), (2, 3))
    delta = 1.0 + 0.5 * v_fn(params, obs[1]) - v_fn(params, obs[0])
    g_h = jax.grad(gtd.tdc_loss, argnums=2)(
        v_fn, params, h, obs[0], 1.0, 0.5, obs[1], 1.0, h_fn=linear_v)
    np.testing.assert_allclose(g_h, -(delta - h @ obs[0]) * obs[0], rtol=1e-4, atol=1e-6)


def test_bad_inputs_raise_named_errors():
    state = gtd.GTDState(W, H)
    with pytest.raises(AssertionError, match="same shape"):
        gtd.tdc_update(state, jnp.zeros(3), R, D, X_T, RHO, 0.1, 0.2)
    with pytest.raises(AssertionError, match="`rho_tm1` must have rank 0"):
        gtd.gtd2_update(state, X_TM1, R, D, X_T, jnp.ones(2), 0.1, 0.2)
    with pytest.raises(AssertionError, match="`alpha` must have a float"):
        gtd.off_policy_td_update(W, X_TM1, R, D, X_T, RHO, jnp.array(1))
    with pytest.raises(AssertionError, match="v_fn"):
        gtd.td_loss(lambda p, o: p * o, W, X_TM1, R, D, X_T)


def np_tdc(w, h, x0, r, d, x1, rho, alpha, beta):
    """TDC exactly as S&B Section 11.7 writes it (rho on both aux terms)."""
    for t in range(len(r)):
        delta = r[t] + d[t] * w @ x1[t] - w @ x0[t]
        vx = h @ x0[t]
        w, h = (w + alpha * rho[t] * (delta * x0[t] - d[t] * x1[t] * vx),
                h + beta * rho[t] * (delta - vx) * x0[t])
    return w, h


def test_tdc_on_baird_stream_matches_book_loop_and_vmaps_over_step_sizes():
    rng = np.random.default_rng(6)
    x0, rho, x1 = mdps.sample_baird(rng, 300)
    r, d = np.zeros(300), np.full(300, 0.99)
    alphas, betas = np.array([0.005, 0.01]), np.array([0.05, 0.1])
    with jax.enable_x64(True):
        @jax.jit
        @chex.assert_max_traces(n=1)
        def run(alpha, beta):
            def body(s, inp):
                return gtd.tdc_update(s, *inp, alpha, beta), None
            w0 = jnp.asarray(mdps.BAIRD_W0)
            s, _ = jax.lax.scan(body, gtd.gtd_init(w0), (x0, r, d, x1, rho))
            return s

        out = jax.vmap(run)(alphas, betas)
        for i in range(2):
            w_np, h_np = np_tdc(mdps.BAIRD_W0, np.zeros(8), x0, r, d, x1, rho,
                                alphas[i], betas[i])
            np.testing.assert_allclose(out.w[i], w_np, rtol=1e-10, atol=1e-10)
            np.testing.assert_allclose(out.h[i], h_np, rtol=1e-10, atol=1e-10)
        jax.vmap(run)(alphas * 2, betas)  # no retrace


def test_boyan_sample_based_td_tdc_gtd2_approach_w_star():
    """On sampled Boyan episodes with decaying step sizes, TD, TDC and GTD2 all head to the
    common fixed point w* = (-24, -16, -8, 0) (from w = 0, 24 away)."""
    rng = np.random.default_rng(7)
    eps = [mdps.sample_boyan(rng) for _ in range(3000)]
    x0 = np.concatenate([e[0][:-1] for e in eps])
    x1 = np.concatenate([e[0][1:] for e in eps])
    r = np.concatenate([e[1] for e in eps])
    d = np.concatenate([e[2] for e in eps])
    n = len(r)
    schedule = 1.0 / (1.0 + np.arange(n) / 2000.0)

    def td_as_gtd(s, x_tm1, r_t, d_t, x_t, rho, alpha, beta):
        return gtd.GTDState(gtd.off_policy_td_update(s.w, x_tm1, r_t, d_t, x_t, rho, alpha), s.h)

    with jax.enable_x64(True):
        for update in (td_as_gtd, gtd.tdc_update, gtd.gtd2_update):
            def body(s, inp, update=update):
                x_tm1, r_t, d_t, x_t, k = inp
                return update(s, x_tm1, r_t, d_t, x_t, 1.0, 0.1 * k, 0.1 * k), None

            s, _ = jax.lax.scan(body, gtd.gtd_init(jnp.zeros(4)), (x0, r, d, x1, schedule))
            np.testing.assert_allclose(s.w, mdps.BOYAN_W_STAR, rtol=0, atol=0.6)
