"""Chapter 11: Baird's counterexample, sample updates of semi-gradient TD and TDC."""

import jax
import jax.numpy as jnp
import numpy as np

from agents.textbook import chapter11, prediction
from agents.textbook.streams import sweep_predictor


def test_baird_semi_gradient_td_diverges_for_every_seed_while_tdc_does_not():
    task = chapter11.baird_task()
    streams = chapter11.baird_streams(task, jax.random.key(7), 8, 1000)
    max_abs = lambda w: jnp.max(jnp.abs(w))
    td = sweep_predictor(prediction.make_predictor("td"), task.w0, [], streams,
                         max_abs, 1000, fixed={"alpha": 0.01})
    tdc = sweep_predictor(prediction.make_predictor("tdc"), task.w0, [], streams,
                          max_abs, 1000, fixed={"alpha": 0.005, "beta": 0.05})
    assert np.all(np.asarray(td[:, -1]) > 100.0)  # from max |w0| = 10
    assert np.all(np.asarray(tdc).max(axis=1) <= 10.0 + 1e-4)


def test_baird_streams_have_importance_ratios_0_or_7():
    task = chapter11.baird_task()
    streams = chapter11.baird_streams(task, jax.random.key(0), 2, 700)
    rho = np.asarray(streams.rho_tm1)
    assert rho.shape == (2, 700) and set(np.unique(rho)) == {0.0, 7.0}
    assert abs(np.mean(rho == 7.0) - 1 / 7) < 0.05  # b(solid) = 1/7
    np.testing.assert_allclose(np.asarray(streams.discount_t), task.gamma)  # continuing
