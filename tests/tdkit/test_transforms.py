"""Value transforms, 2-hot encodings and transform pairs: hand values, round trips, misuse."""

import collections
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tdkit import transforms as tx

GRID = np.array([-1e3, -60.0, -3.0, -1.0, -0.5, -1e-3, 0.0, 1e-3, 0.5, 1.0, 3.0, 60.0, 1e3],
                np.float32)
PAIRS = ("IDENTITY_PAIR", "SIGNED_LOGP1_PAIR", "SIGNED_HYPERBOLIC_PAIR", "HYPERBOLIC_SIN_PAIR")


class HandComputedTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_signed_hyperbolic(self):
        # h(3) = sqrt(4) - 1 + 1e-3 * 3 = 1.003; h(-8) = -(sqrt(9) - 1) - 8e-3 = -2.008.
        out = self.variant(tx.signed_hyperbolic)(jnp.array([3.0, -8.0, 0.0]))
        np.testing.assert_allclose(out, [1.003, -2.008, 0.0], rtol=1e-6)
        # eps = 0.5: h(3) = 1 + 1.5.
        np.testing.assert_allclose(self.variant(tx.signed_hyperbolic)(3.0, 0.5), 2.5, rtol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_signed_parabolic(self):
        out = self.variant(tx.signed_parabolic)(jnp.array([1.003, -2.008, 0.0]))
        np.testing.assert_allclose(out, [3.0, -8.0, 0.0], rtol=1e-5)
        np.testing.assert_allclose(self.variant(tx.signed_parabolic)(2.5, 0.5), 3.0, rtol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_log_exp_sinh(self):
        e = math.e
        np.testing.assert_allclose(
            self.variant(tx.signed_logp1)(jnp.array([e - 1, -(e - 1), 0.0])), [1, -1, 0],
            rtol=1e-6)
        np.testing.assert_allclose(
            self.variant(tx.signed_expm1)(jnp.array([1.0, -1.0, 0.0])), [e - 1, 1 - e, 0],
            rtol=1e-6)
        # sinh(log 2) = (2 - 1/2) / 2 = 0.75.
        np.testing.assert_allclose(
            self.variant(tx.hyperbolic_sin)(jnp.float32(math.log(2))), 0.75, rtol=1e-6)
        np.testing.assert_allclose(
            self.variant(tx.hyperbolic_arcsin)(jnp.float32(0.75)), math.log(2), rtol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_sigmoid_logit_identity(self):
        np.testing.assert_allclose(self.variant(tx.sigmoid)(jnp.array([0.0, math.log(3)])),
                                   [0.5, 0.75], rtol=1e-6)
        np.testing.assert_allclose(self.variant(tx.logit)(jnp.array([0.5, 0.75])),
                                   [0.0, math.log(3)], atol=1e-6)
        np.testing.assert_array_equal(self.variant(tx.identity)(GRID), GRID)

    @chex.variants(with_jit=True, without_jit=True)
    def test_power(self):
        # p = 4, q = 2: ((2 / 2 + 1)^4 - 1) / 2 = 7.5;
        # p = 1/4, q = 1/2: ((7.5 / 0.5 + 1)^(1/4) - 1) / 0.5 = 2.
        power = self.variant(tx.power)
        np.testing.assert_allclose(power(jnp.array([2.0, -2.0]), 4.0), [7.5, -7.5], rtol=1e-6)
        np.testing.assert_allclose(power(jnp.array([7.5, -7.5]), 0.25), [2.0, -2.0], rtol=1e-6)

    def test_discount_pair(self):
        # -log(1 - 0.9) = log 10.
        np.testing.assert_allclose(tx.DISCOUNT_TRANSFORM_PAIR.apply(jnp.float32(0.9)),
                                   math.log(10), rtol=1e-6)
        np.testing.assert_allclose(tx.DISCOUNT_TRANSFORM_PAIR.apply_inv(
            jnp.float32(math.log(10))), 0.9, rtol=1e-6)


class RoundTripTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_pairs(self):
        for name in PAIRS:
            pair = getattr(tx, name)
            x = GRID if name != "HYPERBOLIC_SIN_PAIR" else GRID[np.abs(GRID) < 80]
            back = self.variant(lambda v, p=pair: p.apply_inv(p.apply(v)))(x)
            np.testing.assert_allclose(back, x, rtol=2e-6, atol=1e-6, err_msg=name)
            y = x if name != "SIGNED_LOGP1_PAIR" else x[np.abs(x) < 80]
            if name == "HYPERBOLIC_SIN_PAIR":
                y = x[np.abs(x) < 10]
            back = self.variant(lambda v, p=pair: p.apply(p.apply_inv(v)))(y)
            np.testing.assert_allclose(back, y, rtol=2e-6, atol=1e-6, err_msg=name)

    def test_signed_hyperbolic_eps(self):
        for eps in (1e-3, 0.1, 1.0):
            np.testing.assert_allclose(
                tx.signed_parabolic(tx.signed_hyperbolic(GRID, eps), eps), GRID, rtol=2e-6)

    def test_power_inverse(self):
        for p in (0.5, 2.0, 3.0):
            x = GRID[np.abs(GRID) <= 60]
            np.testing.assert_allclose(tx.power(tx.power(x, p), 1 / p), x, rtol=1e-5, atol=1e-6)

    def test_sigmoid_logit(self):
        x = np.linspace(-8, 8, 33).astype(np.float32)
        # float32 resolves sigmoid(8) = 0.99966 to 6e-8, and logit's slope there is ~3000.
        np.testing.assert_allclose(tx.logit(tx.sigmoid(x)), x, atol=2e-4)

    def test_discount_pair(self):
        d = np.array([0.0, 0.5, 0.9, 0.99, 0.999], np.float32)
        pair = tx.DISCOUNT_TRANSFORM_PAIR
        np.testing.assert_allclose(pair.apply_inv(pair.apply(d)), d, rtol=1e-6)


class ShapesAndGradientsTest(chex.TestCase):

    def test_elementwise_keeps_shape(self):
        x = jnp.ones((2, 3, 4))
        for fn in (tx.identity, tx.sigmoid, tx.signed_logp1, tx.signed_expm1,
                   tx.signed_hyperbolic, tx.signed_parabolic, tx.hyperbolic_sin,
                   tx.hyperbolic_arcsin, lambda v: tx.power(v, 2.0)):
            chex.assert_shape(fn(x), (2, 3, 4))
            chex.assert_shape(fn(jnp.float32(1.0)), ())

    def test_signed_hyperbolic_gradient(self):
        # h'(x) = 1 / (2 sqrt(|x| + 1)) + eps: 0.5 + eps at 0, 0.25 + eps at 3.
        grad = jax.grad(tx.signed_hyperbolic)
        np.testing.assert_allclose(grad(0.0), 0.501, rtol=1e-6)
        np.testing.assert_allclose(grad(3.0), 0.251, rtol=1e-6)
        np.testing.assert_allclose(grad(-3.0), 0.251, rtol=1e-6)
        # The inverse has the reciprocal slope: 1 / 0.251 at h(3).
        np.testing.assert_allclose(jax.grad(tx.signed_parabolic)(1.003), 1 / 0.251, rtol=1e-5)
        np.testing.assert_allclose(jax.grad(tx.signed_parabolic)(0.0), 1 / 0.501, rtol=1e-6)

    def test_vmap_matches_loop(self):
        x = jnp.asarray(GRID)
        np.testing.assert_allclose(jax.vmap(tx.signed_hyperbolic)(x),
                                   [tx.signed_hyperbolic(v) for v in x], rtol=1e-6)


class TwoHotTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_hand_computed(self):
        # Bins -1, -0.5, 0, 0.5, 1 (width 0.5). 0.25 is halfway between bins 2 and 3;
        # -0.4 is 0.1 above -0.5: 0.8 on bin 1, 0.2 on bin 2. Values outside are clipped.
        to_2hot = self.variant(lambda s: tx.transform_to_2hot(s, -1.0, 1.0, 5))
        out = to_2hot(jnp.array([0.25, -0.4, -0.5, -1.0, 1.0, 10.0, -5.0, 0.3]))
        np.testing.assert_allclose(out, [
            [0, 0, 0.5, 0.5, 0],
            [0, 0.8, 0.2, 0, 0],
            [0, 1, 0, 0, 0],
            [1, 0, 0, 0, 0],
            [0, 0, 0, 0, 1],
            [0, 0, 0, 0, 1],
            [1, 0, 0, 0, 0],
            [0, 0, 0.4, 0.6, 0],
        ], atol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_decode_hand_computed(self):
        from_2hot = self.variant(lambda p: tx.transform_from_2hot(p, -1.0, 1.0, 5))
        # 0.5 * 0 + 0.5 * 0.5 = 0.25; 0.1 * -1 + 0.9 * 1 = 0.8.
        probs = jnp.array([[0, 0, 0.5, 0.5, 0], [0.1, 0, 0, 0, 0.9]])
        np.testing.assert_allclose(from_2hot(probs), [0.25, 0.8], rtol=1e-6)
        np.testing.assert_allclose(from_2hot(probs[0]), 0.25, rtol=1e-6)
        chex.assert_shape(from_2hot(probs[0]), ())

    @chex.variants(with_jit=True, without_jit=True)
    def test_round_trip_and_clipping(self):
        lo, hi, k = -1.0, 1.0, 11
        values = np.arange(-1.5, 1.5, 0.01).astype(np.float32)
        probs = self.variant(lambda v: tx.transform_to_2hot(v, lo, hi, k))(values)
        chex.assert_shape(probs, (values.shape[0], k))
        np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-6)
        assert float(probs.min()) >= 0.0
        assert int(((probs > 0).sum(-1) <= 2).all())
        back = self.variant(lambda p: tx.transform_from_2hot(p, lo, hi, k))(probs)
        np.testing.assert_allclose(back, np.clip(values, lo, hi), atol=1e-6)

    def test_batched_shapes(self):
        probs = tx.transform_to_2hot(jnp.zeros((2, 3)), -2.0, 2.0, 7)
        chex.assert_shape(probs, (2, 3, 7))
        chex.assert_shape(tx.transform_from_2hot(probs, -2.0, 2.0, 7), (2, 3))
        chex.assert_shape(tx.transform_to_2hot(jnp.float32(0.3), -2.0, 2.0, 7), (7,))

    def test_traced_support(self):
        f = jax.jit(lambda s, lo, hi: tx.transform_to_2hot(s, lo, hi, 5))
        np.testing.assert_allclose(f(jnp.float32(0.25), -1.0, 1.0), [0, 0, 0.5, 0.5, 0],
                                   atol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_nonlinear_hand_computed(self):
        bins = jnp.array([0.0, 1.0, 3.0])
        # 2 is halfway between 1 and 3; 0.25 is a quarter of the way from 0 to 1.
        out = self.variant(tx.transform_to_2hot_nonlinear)(
            jnp.array([2.0, 0.25, 0.0, 1.0, 3.0, -1.0, 5.0]), bins)
        np.testing.assert_allclose(out, [
            [0, 0.5, 0.5], [0.75, 0.25, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0],
            [0, 0, 1]], atol=1e-6)
        np.testing.assert_allclose(
            self.variant(tx.transform_from_2hot_nonlinear)(out, bins),
            [2.0, 0.25, 0.0, 1.0, 3.0, 0.0, 3.0], atol=1e-6)
        chex.assert_shape(tx.transform_to_2hot_nonlinear(jnp.float32(2.0), bins), (3,))


class PairConstructorsTest(chex.TestCase):

    def test_txpair_fields(self):
        assert tx.TxPair._fields == ("apply", "apply_inv")
        assert tx.HYPERBOLIC_SIN_PAIR.apply is tx.hyperbolic_arcsin
        assert tx.SIGNED_HYPERBOLIC_PAIR == (tx.signed_hyperbolic, tx.signed_parabolic)

    def test_twohot_pair(self):
        pair = tx.twohot_pair(-10.0, 10.0, 21)
        x = np.linspace(-12, 12, 97).astype(np.float32)
        chex.assert_shape(pair.apply(x), (97, 21))
        np.testing.assert_allclose(pair.apply_inv(pair.apply(x)), np.clip(x, -10, 10),
                                   atol=2e-6)

    def test_muzero_and_unbiased_round_trip(self):
        # rlax's own check: the 2-hot of a squashed value decodes to the value.
        a = np.array([1.03, 4.43, -3012.33, 0.0], np.float32)
        for ctor in ("muzero_pair", "unbiased_transform_pair"):
            pair = getattr(tx, ctor)(min_value=-300, max_value=300, num_bins=601,
                                     tx=tx.SIGNED_HYPERBOLIC_PAIR)
            probs = pair.apply(a)
            chex.assert_shape(probs, (4, 601))
            np.testing.assert_allclose(pair.apply_inv(probs), a, rtol=1e-4, atol=1e-4,
                                       err_msg=ctor)

    def test_compose_order(self):
        double = tx.TxPair(lambda v: 2.0 * v, lambda v: v / 2.0)
        pair = tx.compose_tx(tx.SIGNED_HYPERBOLIC_PAIR, double)
        # apply: double(h(3)) = 2.006; apply_inv: h^-1(2.006 / 2) = 3.
        np.testing.assert_allclose(pair.apply(jnp.float32(3.0)), 2.006, rtol=1e-6)
        np.testing.assert_allclose(pair.apply_inv(jnp.float32(2.006)), 3.0, rtol=1e-5)

    def test_plain_namedtuple_pairs_work(self):
        # rlax's TxPair is a collections.namedtuple; such pairs are accepted too.
        other = collections.namedtuple("TxPair", ["apply", "apply_inv"])(jnp.tanh, jnp.arctanh)
        pair = tx.compose_tx(other, tx.IDENTITY_PAIR)
        np.testing.assert_allclose(pair.apply_inv(pair.apply(jnp.float32(0.5))), 0.5,
                                   rtol=1e-6)


class MisuseTest(chex.TestCase):

    def test_integer_inputs(self):
        for fn in (tx.identity, tx.sigmoid, tx.logit, tx.signed_logp1, tx.signed_expm1,
                   tx.signed_hyperbolic, tx.signed_parabolic, tx.hyperbolic_sin,
                   tx.hyperbolic_arcsin):
            with pytest.raises(AssertionError, match=f"{fn.__name__}: argument `x`"):
                fn(jnp.array([1, 2]))
        with pytest.raises(AssertionError, match="transform_to_2hot: argument `scalar`"):
            tx.transform_to_2hot(jnp.array([1, 2]), -1.0, 1.0, 5)
        with pytest.raises(AssertionError, match="transform_from_2hot: argument `probs`"):
            tx.transform_from_2hot(jnp.zeros(5, jnp.int32), -1.0, 1.0, 5)

    def test_power_p(self):
        with pytest.raises(ValueError, match="power: argument `p`"):
            tx.power(jnp.ones(3), 0.0)

    def test_support(self):
        for fn in (lambda *a: tx.transform_to_2hot(jnp.zeros(3), *a),
                   lambda *a: tx.transform_from_2hot(jnp.zeros((3, 5)), *a),
                   tx.twohot_pair):
            with pytest.raises(ValueError, match="argument `num_bins` must be >= 2"):
                fn(-1.0, 1.0, 1)
            with pytest.raises(TypeError, match="argument `num_bins` must be a Python int"):
                fn(-1.0, 1.0, 5.0)
            with pytest.raises(ValueError, match="argument `min_value` must be < `max_value`"):
                fn(1.0, 1.0, 5)
            with pytest.raises(ValueError, match="argument `min_value` must be < `max_value`"):
                fn(2.0, -1.0, 5)

    def test_probs_last_dim(self):
        with pytest.raises(AssertionError, match=r"transform_from_2hot: argument `probs`.*5"):
            tx.transform_from_2hot(jnp.zeros((3, 4)), -1.0, 1.0, 5)
        with pytest.raises(AssertionError, match="argument `probs`"):
            tx.transform_from_2hot_nonlinear(jnp.zeros((3, 4)), jnp.arange(5.0))

    def test_bins(self):
        with pytest.raises(AssertionError, match="argument `bins` must have rank 1"):
            tx.transform_to_2hot_nonlinear(jnp.zeros(3), jnp.zeros((2, 3)))
        with pytest.raises(ValueError, match="argument `bins` must hold at least 2"):
            tx.transform_to_2hot_nonlinear(jnp.zeros(3), jnp.zeros(1))

    def test_not_a_pair(self):
        with pytest.raises(TypeError, match=r"compose_tx: argument `tx_list\[1\]`"):
            tx.compose_tx(tx.IDENTITY_PAIR, tx.signed_hyperbolic)
        with pytest.raises(TypeError, match="unbiased_transform_pair: argument `tx`"):
            tx.unbiased_transform_pair(-1.0, 1.0, 5, tx.signed_hyperbolic)
