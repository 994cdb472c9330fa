"""Autodiff helpers: hand-derived Hessians and Jacobians, mode choice, clipped gradients,
the safe norm, and top Hessian eigenvalues against numpy.linalg.eigh."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tdkit import autodiff

# The logistic model sigmoid(inputs @ W + b) on a 4 x 3 input.
INPUTS = jnp.array([[1.0, 2.0, -1.0], [0.5, -0.3, 0.8], [-1.2, 0.1, 0.4], [0.0, 1.0, 1.0]])
W = jnp.array([0.3, -0.2, 0.5])
B = jnp.float32(0.1)


def predictions(w, b=B):
    return jax.nn.sigmoid(INPUTS @ w + b)  # [4]


def _by_hand():
    """d sigma / dW = s (1 - s) x and d^2 sigma / dW^2 = s (1 - s) (1 - 2 s) x x^T."""
    x = np.asarray(INPUTS, np.float64)
    s = 1.0 / (1.0 + np.exp(-(x @ np.asarray(W, np.float64) + 0.1)))
    jac = (s * (1 - s))[:, None] * x
    hess = (s * (1 - s) * (1 - 2 * s))[:, None, None] * x[:, :, None] * x[:, None, :]
    return jac, hess, s * (1 - s)


def test_hessian_of_dot_is_twice_identity():
    h = autodiff.hessian(lambda x: jnp.dot(x, x))(jnp.array([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(h, 2 * np.eye(3))


def test_logistic_jacobians_agree_and_match_hand_derivation():
    jac_hand, _, _ = _by_hand()
    forward = autodiff.jacobian(predictions, mode="forward")(W)
    reverse = autodiff.jacobian(predictions, mode="reverse")(W)
    chex.assert_shape([forward, reverse], (4, 3))
    np.testing.assert_allclose(forward, reverse, rtol=1e-6)
    np.testing.assert_allclose(forward, jac_hand, rtol=1e-5)
    np.testing.assert_allclose(autodiff.jacobian(predictions)(W), jac_hand, rtol=1e-5)


def test_logistic_hessian_shape_symmetry_and_values():
    _, hess_hand, _ = _by_hand()
    h = jax.jit(autodiff.hessian(predictions))(W)
    chex.assert_shape(h, (4, 3, 3))
    np.testing.assert_allclose(h, np.swapaxes(h, 1, 2), rtol=1e-6)
    np.testing.assert_allclose(h, hess_hand, rtol=1e-4, atol=1e-7)


def test_hvp_equals_hessian_times_vector():
    v = jnp.array([1.0, -2.0, 0.5])
    full = autodiff.hessian(predictions)(W)  # [4, 3, 3]
    per_output = jax.jit(jax.vmap(
        lambda i: autodiff.hvp(lambda w: predictions(w)[i], (W,), (v,))))(jnp.arange(4))
    np.testing.assert_allclose(per_output, full @ v, rtol=1e-5, atol=1e-7)
    # A pytree of parameters: the Hessian-vector product has the structure of the parameters.
    loss = lambda p: jnp.sum(predictions(p["w"], p["b"]) ** 2)
    params = {"w": W, "b": B}
    tangent = {"w": v, "b": jnp.float32(2.0)}
    hv = jax.jit(lambda p, t: autodiff.hvp(loss, (p,), (t,)))(params, tangent)
    flat_hessian = jax.hessian(lambda z: loss({"w": z[:3], "b": z[3]}))(jnp.append(W, B))
    expected = flat_hessian @ jnp.append(v, 2.0)
    np.testing.assert_allclose(hv["w"], expected[:3], rtol=1e-5)
    np.testing.assert_allclose(hv["b"], expected[3], rtol=1e-5)


def test_hvp_never_forms_the_hessian():
    # f(x) = sum(x^4) / 4 has H = diag(3 x^2). No intermediate of the traced program may have
    # P * P entries (the Hessian), only O(P).
    p = 2000
    f = lambda x: jnp.sum(x**4) / 4
    x = jnp.linspace(-1.0, 1.0, p)
    v = jnp.cos(jnp.arange(p, dtype=jnp.float32))
    np.testing.assert_allclose(autodiff.hvp(f, (x,), (v,)), 3 * x**2 * v, rtol=1e-5, atol=1e-6)
    jaxpr = jax.make_jaxpr(lambda x, v: autodiff.hvp(f, (x,), (v,)))(x, v)
    sizes = [int(np.prod(var.aval.shape)) for eqn in jaxpr.jaxpr.eqns for var in eqn.outvars]
    assert max(sizes) == p
    full = jax.make_jaxpr(autodiff.hessian(f))(x)  # The check itself can fail:
    assert max(int(np.prod(var.aval.shape)) for e in full.jaxpr.eqns for var in e.outvars) >= p * p


def test_jacobian_with_respect_to_a_dict_of_parameters():
    jac_hand, _, d_sigmoid = _by_hand()
    f = lambda params: jax.nn.sigmoid(INPUTS @ params["W"] + params["b"])
    params = {"W": W, "b": B}
    for mode in ("auto", "forward", "reverse"):
        jac = autodiff.jacobian(f, mode=mode)(params)
        chex.assert_shape(jac["W"], (4, 3))
        chex.assert_shape(jac["b"], (4,))
        np.testing.assert_allclose(jac["W"], jac_hand, rtol=1e-5)
        np.testing.assert_allclose(jac["b"], d_sigmoid, rtol=1e-5)


def test_jacobian_mode_picks_forward_for_tall_and_reverse_for_wide():
    tall = lambda x: jnp.outer(x, x).ravel()  # 3 -> 9
    wide = lambda x: jnp.sum(x**2, keepdims=True)  # 3 -> 1
    x = jnp.ones(3)
    assert autodiff.jacobian_mode(tall, x) == "forward"
    assert autodiff.jacobian_mode(wide, x) == "reverse"
    assert autodiff.jacobian_mode(predictions, W) == "forward"  # 3 -> 4
    assert autodiff.jacobian_mode(lambda w, b: predictions(w, b), W, B, argnums=(0, 1)) == (
        "forward")  # 4 inputs -> 4 outputs: a square Jacobian uses forward mode.
    assert autodiff.jacobian_mode(lambda p: p["a"] @ p["b"], {"a": x, "b": x}) == "reverse"


def test_auto_mode_really_uses_the_chosen_transform():
    # A while_loop has only a forward-mode derivative; a custom_vjp only a reverse-mode one.
    def tall_forward_only(x):  # 2 -> 4
        y = jax.lax.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1] * 2.0), (0, x))[1]
        return jnp.concatenate([y, y**2])

    @jax.custom_vjp
    def wide_reverse_only(x):  # 4 -> 1
        return jnp.sum(x**2, keepdims=True)

    wide_reverse_only.defvjp(lambda x: (wide_reverse_only(x), x),
                             lambda x, g: (2 * x * g,))
    x2, x4 = jnp.array([1.0, 2.0]), jnp.array([1.0, -1.0, 2.0, 0.5])
    np.testing.assert_allclose(autodiff.jacobian(tall_forward_only)(x2),
                               np.concatenate([8 * np.eye(2), np.diag(128 * np.asarray(x2))]))
    np.testing.assert_allclose(autodiff.jacobian(wide_reverse_only)(x4), [2 * np.asarray(x4)])
    with pytest.raises(Exception):  # noqa: B017  (JAX raises different types per mode)
        autodiff.jacobian(tall_forward_only, mode="reverse")(x2)
    with pytest.raises(Exception):  # noqa: B017
        autodiff.jacobian(wide_reverse_only, mode="forward")(x4)


def test_jacobian_rejects_an_unknown_mode():
    with pytest.raises(ValueError, match="jacobian: `mode` must be one of"):
        autodiff.jacobian(predictions, mode="sideways")


def test_clip_gradient_is_identity_forward_and_clips_backward():
    x = jnp.array([0.5, -2.0, 3.0])
    np.testing.assert_array_equal(autodiff.clip_gradient(x, -1.0, 1.0), x)
    np.testing.assert_array_equal(jax.jit(autodiff.clip_gradient)(x, -1.0, 1.0), x)
    upstream = jnp.array([5.0, -0.5, -3.0])  # d/dx of sum(upstream * x)
    loss = lambda x, lo, hi: jnp.sum(upstream * autodiff.clip_gradient(x, lo, hi))
    np.testing.assert_array_equal(jax.grad(loss)(x, -1.0, 1.0), [1.0, -0.5, -1.0])
    np.testing.assert_array_equal(jax.jit(jax.grad(loss))(x, -0.25, 4.0), [4.0, -0.25, -0.25])
    np.testing.assert_array_equal(jax.grad(loss)(x, jnp.array([0.0, 0.0, -9.0]),
                                                 jnp.array([1.0, 1.0, 9.0])), [1.0, 0.0, -3.0])
    # Bounds get no gradient; the gradient is clipped per example under vmap.
    g_lo, g_hi = jax.grad(loss, argnums=(1, 2))(x, -1.0, 1.0)
    assert g_lo == 0.0 and g_hi == 0.0
    per_example = jax.vmap(jax.grad(lambda x: 10.0 * autodiff.clip_gradient(x, -1.0, 2.0)))
    np.testing.assert_array_equal(per_example(x), [2.0, 2.0, 2.0])


def test_clip_gradient_bad_input():
    with pytest.raises(ValueError, match="clip_gradient: `gradient_min` must be <= `gradient_max`, "
                       "got gradient_min=2.0, gradient_max=1.0"):
        autodiff.clip_gradient(jnp.ones(3), 2.0, 1.0)
    with pytest.raises(ValueError, match="`gradient_min` must be <= `gradient_max`"):
        jax.jit(lambda x: autodiff.clip_gradient(x, np.array([0.0, 3.0]), 1.0))(jnp.ones(2))
    with pytest.raises(AssertionError, match="argument `x` must have a float dtype"):
        autodiff.clip_gradient(jnp.ones(3, jnp.int32), -1.0, 1.0)
    with pytest.raises(AssertionError,
                       match="argument `gradient_min` must be a scalar or have the shape"):
        autodiff.clip_gradient(jnp.ones(3), jnp.zeros(2), 1.0)
    with pytest.raises(AssertionError, match="argument `gradient_max` must be a scalar or have "
                       "a scalar for a pytree"):
        autodiff.clip_gradient({"w": jnp.ones(2)}, -1.0, jnp.ones(2))


def test_clip_gradient_has_rlax_signature_and_clips_pytrees():
    import inspect
    assert list(inspect.signature(autodiff.clip_gradient).parameters) == [
        "x", "gradient_min", "gradient_max"]
    params = {"w": jnp.array([1.0, 2.0]), "b": jnp.array(3.0)}
    upstream = {"w": jnp.array([4.0, -0.1]), "b": jnp.array(-7.0)}

    def loss(p):
        clipped = autodiff.clip_gradient(p, gradient_min=-1.0, gradient_max=2.0)
        return sum(jnp.sum(u * c) for u, c in zip(jax.tree.leaves(upstream),
                                                  jax.tree.leaves(clipped), strict=True))

    grads = jax.grad(loss)(params)
    np.testing.assert_allclose(grads["w"], [2.0, -0.1], rtol=1e-6)
    np.testing.assert_array_equal(grads["b"], -1.0)


def test_safe_norm_has_a_finite_derivative_at_zero():
    @jax.jit
    def derivatives(zero, x, rows):
        return {
            "default_grad_at_0": jax.grad(jnp.linalg.norm)(zero),
            "grad_at_0": jax.grad(autodiff.safe_norm)(zero),
            "hessian_at_0": jax.hessian(autodiff.safe_norm)(zero),
            "value": autodiff.safe_norm(x),
            "grad": jax.grad(autodiff.safe_norm)(x),
            "hessian": jax.hessian(autodiff.safe_norm)(x),
            "row_norms": autodiff.safe_norm(rows, axis=1),
            "row_norms_keepdims": autodiff.safe_norm(rows, axis=-1, keepdims=True),
            "row_grads": jax.grad(lambda r: jnp.sum(autodiff.safe_norm(r, axis=1)))(rows),
        }

    # Per-row norms of per-example gradients, one of which is exactly zero.
    rows = jnp.array([[3.0, 4.0], [0.0, 0.0]])
    out = derivatives(jnp.zeros(3), jnp.array([3.0, 4.0]), rows)
    assert np.all(np.isnan(out["default_grad_at_0"]))  # The default derivative.
    np.testing.assert_array_equal(out["grad_at_0"], [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(out["hessian_at_0"], np.zeros((3, 3)))
    # Away from zero: the value, x / ||x|| and (I - u u^T) / ||x|| of the ordinary norm.
    assert out["value"] == 5.0
    np.testing.assert_allclose(out["grad"], [0.6, 0.8], rtol=1e-6)
    np.testing.assert_allclose(out["hessian"], [[0.128, -0.096], [-0.096, 0.072]], rtol=1e-5)
    np.testing.assert_allclose(out["row_norms"], [5.0, 0.0])
    np.testing.assert_allclose(out["row_norms_keepdims"], [[5.0], [0.0]])
    np.testing.assert_allclose(out["row_grads"], [[0.6, 0.8], [0.0, 0.0]], rtol=1e-6)
    np.testing.assert_array_equal(autodiff.safe_norm(jnp.zeros(2)), 0.0)  # Eagerly too.


def _random_spd(n, seed):
    m = np.random.default_rng(seed).normal(size=(n, n))
    return m @ m.T + 0.1 * np.eye(n)


@pytest.mark.parametrize("method, iterations", [("lanczos", 8), ("power", 300)])
def test_top_hessian_eigenvalue_of_a_quadratic_equals_eigh(method, iterations):
    a = _random_spd(8, 0)
    loss = lambda x: 0.5 * x @ jnp.asarray(a, jnp.float32) @ x
    got = autodiff.top_hessian_eigenvalue(
        loss, jnp.zeros(8), num_iterations=iterations, method=method)
    np.testing.assert_allclose(got, np.linalg.eigh(a)[0][-1], rtol=1e-4)


def test_top_hessian_eigenvalue_of_a_td_loss_equals_eigh():
    # Linear TD(0) loss 0.5 (stop_gradient(r + gamma w.x') - w.x)^2 averaged over a batch: the
    # Hessian is mean(x x^T); the bootstrapped side contributes nothing.
    rng = np.random.default_rng(1)
    x_tm1 = rng.normal(size=(32, 6)).astype(np.float32)
    x_t = rng.normal(size=(32, 6)).astype(np.float32)
    r_t = rng.normal(size=32).astype(np.float32)

    def loss(params, batch):
        x_tm1, r_t, x_t = batch
        v_tm1 = x_tm1 @ params["w"] + params["b"]
        target = jax.lax.stop_gradient(r_t + 0.9 * (x_t @ params["w"] + params["b"]))
        return jnp.mean(0.5 * (target - v_tm1) ** 2)

    features = np.concatenate([x_tm1, np.ones((32, 1), np.float32)], axis=1)
    expected = np.linalg.eigh(features.T.astype(np.float64) @ features / 32)[0][-1]
    params = {"w": jnp.full(6, 0.3), "b": jnp.float32(-1.0)}
    batch = (x_tm1, r_t, x_t)
    top = jax.jit(lambda p, b: autodiff.top_hessian_eigenvalue(loss, p, b, num_iterations=7))
    np.testing.assert_allclose(top(params, batch), expected, rtol=1e-4)
    power = autodiff.top_hessian_eigenvalue(loss, params, batch, method="power",
                                            num_iterations=500, key=jax.random.key(3))
    np.testing.assert_allclose(power, expected, rtol=1e-3)


def test_step_size_from_the_top_eigenvalue_separates_convergence_from_divergence():
    a = jnp.asarray(_random_spd(5, 2), jnp.float32)
    loss = lambda x: 0.5 * x @ a @ x
    lam = autodiff.top_hessian_eigenvalue(loss, jnp.zeros(5), num_iterations=5)

    def final_loss(step_size):
        x = jax.lax.fori_loop(0, 300, lambda _, x: x - step_size * jax.grad(loss)(x),
                              jnp.ones(5))
        return loss(x)

    assert final_loss(1.9 / lam) < 1e-3 * loss(jnp.ones(5))
    assert final_loss(2.1 / lam) > 1e3 * loss(jnp.ones(5))


def test_lanczos_finds_the_largest_algebraic_eigenvalue_and_survives_breakdown():
    # Indefinite: eigenvalues -5, 1, 2. Lanczos returns 2; power iteration the largest
    # magnitude, -5 (as documented).
    d = jnp.array([-5.0, 1.0, 2.0])
    loss = lambda x: 0.5 * jnp.sum(d * x**2)
    np.testing.assert_allclose(
        autodiff.top_hessian_eigenvalue(loss, jnp.zeros(3), num_iterations=10), 2.0, rtol=1e-5)
    np.testing.assert_allclose(
        autodiff.top_hessian_eigenvalue(loss, jnp.zeros(3), method="power", num_iterations=200),
        -5.0, rtol=1e-4)
    # Rank 2 in 40 dimensions: the Krylov space is exhausted after 2 steps (breakdown).
    x = np.random.default_rng(4).normal(size=(2, 40)).astype(np.float32)
    low_rank = lambda w: 0.5 * jnp.mean((jnp.asarray(x) @ w) ** 2)
    expected = np.linalg.eigh(x.T.astype(np.float64) @ x / 2)[0][-1]
    got = autodiff.top_hessian_eigenvalue(low_rank, jnp.zeros(40), num_iterations=20)
    np.testing.assert_allclose(got, expected, rtol=1e-4)


def test_top_hessian_eigenvalue_bad_input():
    loss = lambda x: jnp.sum(x**2)
    with pytest.raises(ValueError, match="`num_iterations` must be a positive integer"):
        autodiff.top_hessian_eigenvalue(loss, jnp.zeros(2), num_iterations=0)
    with pytest.raises(ValueError, match="`method` must be 'lanczos' or 'power'"):
        autodiff.top_hessian_eigenvalue(loss, jnp.zeros(2), method="qr")
    with pytest.raises(AssertionError, match="argument `params` must hold float arrays"):
        autodiff.top_hessian_eigenvalue(loss, jnp.zeros(2, jnp.int32))
