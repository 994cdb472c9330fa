"""Transformed returns and TD errors: hand values, plain-loop oracles, stop-gradients, misuse."""

import functools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tdkit import nonlinear_bellman as nb
from tdkit import transforms as tx
from tests.tdkit import oracles

T, A = 7, 3
EPS = 1e-3


def _h(x):
    return np.sign(x) * (np.sqrt(np.abs(x) + 1) - 1) + EPS * x


def _h_inv(y):
    z = (np.sqrt(1 + 4 * EPS * (EPS + 1 + np.abs(y))) - 1) / (2 * EPS)
    return np.sign(y) * (z * z - 1)


# float64 NumPy versions of the pairs, written from the formulas (not from tdkit).
NP_PAIRS = {
    "IDENTITY_PAIR": (lambda x: x, lambda x: x),
    "SIGNED_LOGP1_PAIR": (lambda x: np.sign(x) * np.log1p(np.abs(x)),
                          lambda x: np.sign(x) * np.expm1(np.abs(x))),
    "SIGNED_HYPERBOLIC_PAIR": (_h, _h_inv),
    "HYPERBOLIC_SIN_PAIR": (np.arcsinh, np.sinh),
}


def _trajectory(seed):
    """Random trajectory with two episode ends (discount 0) inside."""
    rng = np.random.default_rng(seed)
    f = lambda *s: rng.normal(size=s).astype(np.float32)
    d = rng.choice([0.9, 0.99, 1.0], size=T).astype(np.float32)
    d[2] = d[5] = 0.0
    return dict(
        q_tm1=f(T, A), q_t=f(T, A), v_t=f(T), r_t=f(T), discount_t=d,
        a_tm1=rng.integers(0, A, size=T).astype(np.int32),
        a_t=rng.integers(0, A, size=T).astype(np.int32),
        pi_t=rng.dirichlet(np.ones(A), size=T).astype(np.float32),
        mu_t=rng.uniform(0.1, 1.0, size=T).astype(np.float32),
        lambda_t=rng.uniform(0.0, 1.0, size=T).astype(np.float32),
        c_t=rng.uniform(0.0, 1.0, size=T).astype(np.float32))


def _off_policy_returns(q, a, r, d, c, pi):
    """Forward view: G_s = sum_{t>=s} (prod_{s<=j<t} d_j c_j) * (r_t + d_t E_pi q_t
    - [t < T-1] d_t c_t q_t[a_t])."""
    n = len(r)
    out = np.zeros(n)
    for s in range(n):
        scale = 1.0
        for t in range(s, n):
            term = r[t] + d[t] * float(np.dot(pi[t], q[t]))
            if t < n - 1:
                term -= d[t] * c[t] * q[t, a[t]]
            out[s] += scale * term
            scale *= d[t] * c[t]
    return out


def _f64(x):
    return {k: v.astype(np.float64) if v.dtype == np.float32 else v for k, v in x.items()}


class HandComputedTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_signed_logp1_lambda_returns(self):
        # h^-1(v) = [1, 3]. lambda 1: G_1 = 1 + 0.5 * 3 = 2.5, G_0 = 1 + 1 * 2.5 = 3.5.
        # lambda 0: G_0 = 1 + 1 * 1 = 2. Results are h(G) = log(1 + G).
        args = (jnp.array([1.0, 1.0]), jnp.array([1.0, 0.5]),
                jnp.array([math.log(2), math.log(4)]))
        fn = self.variant(nb.transformed_lambda_returns, static_argnums=0)
        np.testing.assert_allclose(fn(tx.SIGNED_LOGP1_PAIR, *args, 1.0),
                                   [math.log(4.5), math.log(3.5)], rtol=1e-6)
        np.testing.assert_allclose(fn(tx.SIGNED_LOGP1_PAIR, *args, 0.0),
                                   [math.log(3.0), math.log(3.5)], rtol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_signed_hyperbolic_q_lambda(self):
        # One step, episode ends: target h(r) = h(3) = 1.003; error = 1.003 - q_tm1[a_tm1].
        fn = self.variant(lambda *a: nb.transformed_q_lambda(
            *a, lambda_=0.5, tx_pair=tx.SIGNED_HYPERBOLIC_PAIR))
        out = fn(jnp.array([[0.5, 0.25]]), jnp.array([1]), jnp.array([3.0]), jnp.array([0.0]),
                 jnp.array([[7.0, 9.0]]))
        np.testing.assert_allclose(out, [1.003 - 0.25], rtol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_n_step_q_learning_hand(self):
        # Identity pair, n = 2, r = [1, 2], discounts [0.5, 0.5], bootstrap target_q_t[i, a_t[i]]
        # = [4, 6]: G_0 = 1 + 0.5 * 2 + 0.25 * 6 = 3.5, G_1 = 2 + 0.5 * 6 = 5.
        fn = self.variant(lambda *a: nb.transformed_n_step_q_learning(*a, n=2))
        out = fn(jnp.array([[1.0, 0.0], [0.0, 2.0]]), jnp.array([0, 1]),
                 jnp.array([[4.0, 0.0], [0.0, 6.0]]), jnp.array([0, 1]),
                 jnp.array([1.0, 2.0]), jnp.array([0.5, 0.5]))
        np.testing.assert_allclose(out, [3.5 - 1.0, 5.0 - 2.0], rtol=1e-6)


# Expected errors from rlax's own tests (nonlinear_bellman_test.py), one row per pair:
# identity, signed_logp1, signed_hyperbolic, hyperbolic_sin.
RLAX_Q_TM1 = np.array([[[1.1, 2.1], [-1.1, 1.1], [3.1, -3.1]],
                       [[2.1, 3.1], [-1.1, 0.1], [-2.1, -1.1]]], np.float32)
RLAX_A = np.array([[0, 1, 0], [1, 0, 0]], np.int32)
RLAX_D = np.array([[0., 0.89, 0.85], [0.88, 1., 0.83]], np.float32)
RLAX_R = np.array([[-1.3, -1.3, 2.3], [1.3, 5.3, -3.3]], np.float32)
RLAX_Q_T = np.array([[[1.2, 2.2], [-1.2, 0.2], [2.2, -1.2]],
                     [[4.2, 2.2], [1.2, 1.2], [-1.2, -2.2]]], np.float32)
RLAX_PAIRS = ("IDENTITY_PAIR", "SIGNED_LOGP1_PAIR", "SIGNED_HYPERBOLIC_PAIR",
              "HYPERBOLIC_SIN_PAIR")


class RlaxPublishedValuesTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_q_lambda(self):
        expected = [[[-2.4, 0.4280, 1.07], [0.6935, 3.478, -2.196]],
                    [[-1.9329, 0.6643, -0.7854], [-0.20713, 2.1855, 0.27132]],
                    [[-1.6179, 0.4633, -0.7576], [-1.1097, 1.6509, 0.3598]],
                    [[-2.1785, 0.6562, -0.5938], [-0.0892, 2.6553, -0.1208]]]
        for pair, exp in zip(RLAX_PAIRS, expected, strict=True):
            fn = self.variant(jax.vmap(lambda *a, p=pair: nb.transformed_q_lambda(
                *a, lambda_=0.75, tx_pair=getattr(tx, p))))
            out = fn(RLAX_Q_TM1, RLAX_A, RLAX_R, RLAX_D, RLAX_Q_T)
            np.testing.assert_allclose(out, exp, rtol=1e-3, err_msg=pair)

    @chex.variants(with_jit=True, without_jit=True)
    def test_n_step_q_learning(self):
        expected = [[[-2.4, 1.3112999, 1.0700002], [3.9199996, 2.104, -2.196]],
                    [[-1.9329091, 0.9564189, -0.7853615], [-0.9021418, 1.1716722, 0.2713145]],
                    [[-1.6178751, 0.85600746, -0.75762916], [-0.87689304, 0.6246443, 0.3598088]],
                    [[-2.178451, 1.02313, -0.593768], [-0.415362, 1.790864, -0.120749]]]
        for pair, exp in zip(RLAX_PAIRS, expected, strict=True):
            fn = self.variant(jax.vmap(lambda *a, p=pair: nb.transformed_n_step_q_learning(
                *a, n=2, tx_pair=getattr(tx, p))))
            out = fn(RLAX_Q_TM1, RLAX_A, RLAX_Q_T, RLAX_A, RLAX_R, RLAX_D)
            np.testing.assert_allclose(out, exp, rtol=1e-3, err_msg=pair)

    @chex.variants(with_jit=True, without_jit=True)
    def test_retrace(self):
        qs = np.array([[[1.1, 2.1], [-1.1, 1.1], [3.1, -3.1], [-1.2, 0.0]],
                       [[2.1, 3.1], [9.5, 0.1], [-2.1, -1.1], [0.1, 7.4]]], np.float32)
        targnet_qs = np.array([[[1.2, 2.2], [-1.2, 0.2], [2.2, -1.2], [-2.25, -6.0]],
                               [[4.2, 2.2], [1.2, 1.2], [-1.2, -2.2], [1.5, 1.0]]], np.float32)
        actions = np.array([[0, 1, 0, 0], [1, 0, 0, 1]], np.int32)
        rewards = np.array([[-1.3, -1.3, 2.3, 42.0], [1.3, 5.3, -3.3, -5.0]], np.float32)
        discounts = np.array([[0., 0.89, 0.85, 0.99], [0.88, 1., 0.83, 0.95]], np.float32)
        pi = np.array([[[0.5, 0.5], [0.2, 0.8], [0.6, 0.4], [0.9, 0.1]],
                       [[0.1, 0.9], [1.0, 0.0], [0.3, 0.7], [0.7, 0.3]]], np.float32)
        mu = np.array([[0.5, 0.1, 0.9, 0.3], [0.4, 0.6, 1.0, 0.9]], np.float32)
        expected = [[[-2.4, -2.7905, -3.0313], [0.7889, -6.3645, -0.0795]],
                    [[-1.9329, -4.2626, -6.7738], [-2.3989, -9.9802, 1.4852]],
                    [[-1.6179, -3.0165, -5.2699], [-2.7742, -9.9544, 2.3167]],
                    [[-2.1785, -4.2530, -6.7081], [-1.3654, -8.2213, 0.7641]]]
        for pair, exp in zip(RLAX_PAIRS, expected, strict=True):
            fn = self.variant(jax.vmap(lambda *a, p=pair: nb.transformed_retrace(
                *a, lambda_=0.9, tx_pair=getattr(tx, p))))
            out = fn(qs[:, :-1], targnet_qs[:, 1:], actions[:, :-1], actions[:, 1:],
                     rewards[:, :-1], discounts[:, :-1], pi[:, 1:], mu[:, 1:])
            np.testing.assert_allclose(out, exp, rtol=1e-3, err_msg=pair)


class OracleTest(chex.TestCase):
    """Random trajectories with episode ends inside, every pair, against float64 loops."""

    def _check(self, out, expected, name):
        np.testing.assert_allclose(out, expected, rtol=2e-5, atol=2e-5, err_msg=name)

    @chex.variants(with_jit=True, without_jit=True)
    def test_lambda_returns(self):
        for seed, (name, (h, h_inv)) in enumerate(NP_PAIRS.items()):
            x = _trajectory(seed)
            y = _f64(x)
            pair = getattr(tx, name)
            fn = self.variant(nb.transformed_lambda_returns, static_argnums=0)
            out = fn(pair, x["r_t"], x["discount_t"], x["v_t"], 0.7)
            expected = h(oracles.lambda_returns_forward_view(
                y["r_t"], y["discount_t"], h_inv(y["v_t"]), 0.7))
            self._check(out, expected, name)
            out = fn(pair, x["r_t"], x["discount_t"], x["v_t"], x["lambda_t"])
            expected = h(oracles.lambda_returns_per_step(
                y["r_t"], y["discount_t"], h_inv(y["v_t"]), y["lambda_t"]))
            self._check(out, expected, name)

    @chex.variants(with_jit=True, without_jit=True)
    def test_n_step_returns(self):
        for seed, (name, (h, h_inv)) in enumerate(NP_PAIRS.items()):
            x, y = _trajectory(seed), _f64(_trajectory(seed))
            for n in (1, 3, T + 2):
                out = self.variant(nb.transformed_n_step_returns, static_argnums=(0, 4))(
                    getattr(tx, name), x["r_t"], x["discount_t"], x["v_t"], n)
                v = h_inv(y["v_t"])
                expected = h(np.array([oracles.n_step_return(y["r_t"], y["discount_t"], v, i, n)
                                       for i in range(T)]))
                self._check(out, expected, f"{name} n={n}")

    @chex.variants(with_jit=True, without_jit=True)
    def test_general_off_policy_returns(self):
        for seed, (name, (h, h_inv)) in enumerate(NP_PAIRS.items()):
            x, y = _trajectory(seed), _f64(_trajectory(seed))
            out = self.variant(
                nb.transformed_general_off_policy_returns_from_action_values,
                static_argnums=0)(getattr(tx, name), x["q_t"], x["a_t"], x["r_t"],
                                  x["discount_t"], x["c_t"], x["pi_t"])
            expected = h(_off_policy_returns(h_inv(y["q_t"]), y["a_t"], y["r_t"],
                                             y["discount_t"], y["c_t"], y["pi_t"]))
            self._check(out, expected, name)

    @chex.variants(with_jit=True, without_jit=True)
    def test_q_lambda(self):
        for seed, (name, (h, h_inv)) in enumerate(NP_PAIRS.items()):
            x, y = _trajectory(seed), _f64(_trajectory(seed))
            out = self.variant(lambda *a, p=name: nb.transformed_q_lambda(
                *a, tx_pair=getattr(tx, p)))(
                x["q_tm1"], x["a_tm1"], x["r_t"], x["discount_t"], x["q_t"], 0.6)
            v = h_inv(y["q_t"].max(-1))
            expected = (h(oracles.lambda_returns_forward_view(y["r_t"], y["discount_t"], v, 0.6))
                        - y["q_tm1"][np.arange(T), y["a_tm1"]])
            self._check(out, expected, name)

    @chex.variants(with_jit=True, without_jit=True)
    def test_retrace(self):
        for seed, (name, (h, h_inv)) in enumerate(NP_PAIRS.items()):
            x, y = _trajectory(seed), _f64(_trajectory(seed))
            out = self.variant(lambda *a, p=name: nb.transformed_retrace(
                *a, tx_pair=getattr(tx, p)))(
                x["q_tm1"], x["q_t"], x["a_tm1"], x["a_t"], x["r_t"], x["discount_t"],
                x["pi_t"], x["mu_t"], 0.9)
            c = [0.9 * min(1.0, y["pi_t"][i, y["a_t"][i]] / (y["mu_t"][i] + 1e-8))
                 for i in range(T)]
            expected = (h(_off_policy_returns(h_inv(y["q_t"]), y["a_t"], y["r_t"],
                                              y["discount_t"], c, y["pi_t"]))
                        - y["q_tm1"][np.arange(T), y["a_tm1"]])
            self._check(out, expected, name)

    @chex.variants(with_jit=True, without_jit=True)
    def test_n_step_q_learning(self):
        for seed, (name, (h, h_inv)) in enumerate(NP_PAIRS.items()):
            x, y = _trajectory(seed), _f64(_trajectory(seed))
            for n in (1, 2, 4):
                out = self.variant(lambda *a, p=name, n=n: nb.transformed_n_step_q_learning(
                    *a, n=n, tx_pair=getattr(tx, p)))(
                    x["q_tm1"], x["a_tm1"], x["q_t"], x["a_t"], x["r_t"], x["discount_t"])
                v = h_inv(y["q_t"][np.arange(T), y["a_t"]])
                expected = (h(np.array([oracles.n_step_return(y["r_t"], y["discount_t"], v, i, n)
                                        for i in range(T)]))
                            - y["q_tm1"][np.arange(T), y["a_tm1"]])
                self._check(out, expected, f"{name} n={n}")

    def test_vmap_matches_loop(self):
        xs = [_trajectory(s) for s in range(3)]
        batch = {k: np.stack([x[k] for x in xs]) for k in xs[0]}
        fn = lambda *a: nb.transformed_retrace(*a, tx_pair=tx.SIGNED_HYPERBOLIC_PAIR)
        keys = ("q_tm1", "q_t", "a_tm1", "a_t", "r_t", "discount_t", "pi_t", "mu_t")
        out = jax.vmap(fn, in_axes=(0,) * 8 + (None,))(*(batch[k] for k in keys), 0.9)
        for i, x in enumerate(xs):
            np.testing.assert_allclose(out[i], fn(*(x[k] for k in keys), 0.9), rtol=1e-6)

    def test_two_hot_pair(self):
        # With a 2-hot pair, v_t holds distributions [T, K] and so do the returns; they decode
        # to the lambda-returns of the decoded values (clipped to the support).
        x, y = _trajectory(0), _f64(_trajectory(0))
        k, lo, hi = 41, -10.0, 10.0
        probs = np.random.default_rng(1).dirichlet(np.ones(k), size=T).astype(np.float32)
        support = np.linspace(lo, hi, k)
        out = nb.transformed_lambda_returns(tx.twohot_pair(lo, hi, k), x["r_t"],
                                            x["discount_t"], probs, 0.8)
        chex.assert_shape(out, (T, k))
        expected = np.clip(oracles.lambda_returns_forward_view(
            y["r_t"], y["discount_t"], probs.astype(np.float64) @ support, 0.8), lo, hi)
        np.testing.assert_allclose(out @ support, expected, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(out.sum(-1), 1.0, rtol=1e-6)


class StopGradientTest(chex.TestCase):

    def _grads(self, fn, argnum, x, keys, *extra):
        def total(*args):
            return fn(*args, *extra).sum()
        return jax.grad(total, argnums=argnum)(*(jnp.asarray(x[k]) for k in keys))

    def test_td_errors_both_ways(self):
        x = _trajectory(3)
        pair = tx.SIGNED_HYPERBOLIC_PAIR
        cases = {
            "transformed_q_lambda": (
                lambda *a, s: nb.transformed_q_lambda(*a, 0.7, s, pair),
                ("q_tm1", "a_tm1", "r_t", "discount_t", "q_t"), 4),
            "transformed_retrace": (
                lambda *a, s: nb.transformed_retrace(*a, 0.9, 1e-8, s, pair),
                ("q_tm1", "q_t", "a_tm1", "a_t", "r_t", "discount_t", "pi_t", "mu_t"), 1),
            "transformed_n_step_q_learning": (
                lambda *a, s: nb.transformed_n_step_q_learning(*a, 3, s, pair),
                ("q_tm1", "a_tm1", "q_t", "a_t", "r_t", "discount_t"), 2),
        }
        for name, (fn, keys, target_arg) in cases.items():
            args = [jnp.asarray(x[k]) for k in keys]

            def total(*a, stop, fn=fn):
                return fn(*a, s=stop).sum()

            for stop in (True, False):
                g = jax.grad(functools.partial(total, stop=stop), argnums=target_arg)(*args)
                if stop:
                    np.testing.assert_array_equal(g, np.zeros_like(g), err_msg=name)
                else:
                    assert float(jnp.abs(g).sum()) > 0, name
                # The prediction side keeps its gradient: -1 on each chosen action.
                g_pred = jax.grad(functools.partial(total, stop=stop), argnums=0)(*args)
                expected = -np.eye(A)[x["a_tm1"]]
                np.testing.assert_array_equal(g_pred, expected, err_msg=name)

    def test_td_error_defaults_stop(self):
        # As in rlax, the TD errors stop the target gradients by default.
        x = _trajectory(4)
        g = jax.grad(lambda q_t: nb.transformed_q_lambda(
            x["q_tm1"], x["a_tm1"], x["r_t"], x["discount_t"], q_t, 0.5).sum())(x["q_t"])
        np.testing.assert_array_equal(g, 0.0)
        g = jax.grad(lambda q_t: nb.transformed_retrace(
            x["q_tm1"], q_t, x["a_tm1"], x["a_t"], x["r_t"], x["discount_t"], x["pi_t"],
            x["mu_t"], 0.9).sum())(x["q_t"])
        np.testing.assert_array_equal(g, 0.0)
        g = jax.grad(lambda q_t: nb.transformed_n_step_q_learning(
            x["q_tm1"], x["a_tm1"], q_t, x["a_t"], x["r_t"], x["discount_t"], 2).sum())(x["q_t"])
        np.testing.assert_array_equal(g, 0.0)

    def test_returns_both_ways(self):
        x = _trajectory(5)
        pair = tx.SIGNED_LOGP1_PAIR
        returns = {
            "lambda": lambda v, **kw: nb.transformed_lambda_returns(
                pair, x["r_t"], x["discount_t"], v, 0.5, **kw),
            "n_step": lambda v, **kw: nb.transformed_n_step_returns(
                pair, x["r_t"], x["discount_t"], v, 2, **kw),
        }
        for name, fn in returns.items():
            v = jnp.asarray(x["v_t"])
            # tdkit's returns default to stopping gradients (rlax's do not).
            g = jax.grad(lambda v, fn=fn: fn(v).sum())(v)
            np.testing.assert_array_equal(g, 0.0, err_msg=name)
            g = jax.grad(lambda v, fn=fn: fn(v, stop_target_gradients=False).sum())(v)
            assert float(jnp.abs(g).sum()) > 0, name
        q = jnp.asarray(x["q_t"])
        off = lambda q, **kw: nb.transformed_general_off_policy_returns_from_action_values(
            pair, q, x["a_t"], x["r_t"], x["discount_t"], x["c_t"], x["pi_t"], **kw).sum()
        np.testing.assert_array_equal(jax.grad(off)(q), 0.0)
        assert float(jnp.abs(jax.grad(lambda q: off(q, stop_target_gradients=False))(q)).sum()) > 0


class MisuseTest(chex.TestCase):

    def setUp(self):
        super().setUp()
        self.x = {k: jnp.asarray(v) for k, v in _trajectory(0).items()}

    def test_missing_tx_pair(self):
        x = self.x
        with pytest.raises(TypeError, match="transformed_lambda_returns: argument `tx_pair`"):
            nb.transformed_lambda_returns(x["r_t"], x["discount_t"], x["v_t"], 0.5)
        with pytest.raises(TypeError, match="transformed_q_lambda: argument `tx_pair`"):
            nb.transformed_q_lambda(x["q_tm1"], x["a_tm1"], x["r_t"], x["discount_t"],
                                    x["q_t"], 0.5, True, tx.signed_hyperbolic)

    def test_ranks(self):
        x = self.x
        with pytest.raises(AssertionError, match="transformed_q_lambda: argument `q_tm1`"):
            nb.transformed_q_lambda(x["r_t"], x["a_tm1"], x["r_t"], x["discount_t"],
                                    x["q_t"], 0.5)
        with pytest.raises(AssertionError, match="transformed_retrace: argument `mu_t`"):
            nb.transformed_retrace(x["q_tm1"], x["q_t"], x["a_tm1"], x["a_t"], x["r_t"],
                                   x["discount_t"], x["pi_t"], x["pi_t"], 0.9)
        with pytest.raises(AssertionError, match="transformed_lambda_returns: argument `r_t`"):
            nb.transformed_lambda_returns(tx.IDENTITY_PAIR, x["r_t"][None], x["discount_t"],
                                          x["v_t"])
        with pytest.raises(AssertionError, match=r"tx_pair.apply_inv\(v_t\)"):
            nb.transformed_lambda_returns(tx.IDENTITY_PAIR, x["r_t"], x["discount_t"],
                                          x["q_t"])

    def test_dtypes(self):
        x = self.x
        with pytest.raises(AssertionError,
                           match="transformed_n_step_q_learning: argument `a_t`"):
            nb.transformed_n_step_q_learning(x["q_tm1"], x["a_tm1"], x["q_t"],
                                             x["a_t"].astype(jnp.float32), x["r_t"],
                                             x["discount_t"], 2)

    def test_lengths(self):
        x = self.x
        with pytest.raises(AssertionError, match="`discount_t`"):
            nb.transformed_lambda_returns(tx.IDENTITY_PAIR, x["r_t"], x["discount_t"][:-1],
                                          x["v_t"])
        with pytest.raises(AssertionError, match=r"length T|same shape"):
            nb.transformed_q_lambda(x["q_tm1"][:-1], x["a_tm1"], x["r_t"], x["discount_t"],
                                    x["q_t"][:-1], 0.5)
        with pytest.raises(AssertionError, match=r"tx_pair.apply_inv\(v_t\)"):
            nb.transformed_n_step_returns(tx.IDENTITY_PAIR, x["r_t"], x["discount_t"],
                                          x["v_t"][:-1], 2)
        with pytest.raises(AssertionError, match="argument `lambda_`"):
            nb.transformed_retrace(x["q_tm1"], x["q_t"], x["a_tm1"], x["a_t"], x["r_t"],
                                   x["discount_t"], x["pi_t"], x["mu_t"], jnp.ones(T + 1))

    def test_n(self):
        x = self.x
        with pytest.raises(ValueError, match="argument `n`"):
            nb.transformed_n_step_returns(tx.IDENTITY_PAIR, x["r_t"], x["discount_t"],
                                          x["v_t"], 0)
