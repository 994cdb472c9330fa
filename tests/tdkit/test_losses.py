"""Elementwise losses: hand-computed values and gradients."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tdkit


class LossesTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_l2(self):
        np.testing.assert_allclose(
            self.variant(tdkit.l2_loss)(jnp.array([-2.0, 0.5, 3.0])), [2.0, 0.125, 4.5])
        np.testing.assert_allclose(
            self.variant(tdkit.l2_loss)(jnp.array([1.0, 2.0]), jnp.array([0.0, 4.0])),
            [0.5, 2.0])

    @chex.variants(with_jit=True, without_jit=True)
    def test_huber(self):
        # |x| <= 1: 0.5 x^2; beyond: 0.5 + (|x| - 1)
        out = self.variant(tdkit.huber_loss)(jnp.array([-3.0, -0.5, 0.0, 1.0, 2.5]))
        np.testing.assert_allclose(out, [2.5, 0.125, 0.0, 0.5, 2.0])
        out = self.variant(lambda x: tdkit.huber_loss(x, 2.0))(jnp.array([3.0]))
        np.testing.assert_allclose(out, [2.0 + 2.0 * 1.0])

    def test_huber_gradient_is_clipped_error(self):
        g = jax.vmap(jax.grad(tdkit.huber_loss))(jnp.array([-3.0, -0.5, 0.2, 4.0]))
        np.testing.assert_allclose(g, [-1.0, -0.5, 0.2, 1.0])

    def test_l2_gradient_of_td_error_is_minus_delta(self):
        # d/dv 0.5 (sg(target) - v)^2 = -(target - v): the negative gradient is delta.
        g = jax.grad(lambda v: tdkit.l2_loss(tdkit.td_learning(v, 1.0, 0.5, 2.0)))(0.5)
        np.testing.assert_allclose(g, -(1.0 + 1.0 - 0.5))

    def test_bad_input(self):
        with pytest.raises(AssertionError, match="`predictions`.*same shape|same shape"):
            tdkit.l2_loss(jnp.zeros(3), jnp.zeros(4))
        with pytest.raises(AssertionError, match="huber_loss: argument `x` must have a float"):
            tdkit.huber_loss(jnp.zeros(3, jnp.int32))
        with pytest.raises(ValueError, match="`delta` must be > 0"):
            tdkit.huber_loss(jnp.zeros(3), 0.0)
