"""Distributional TD rules: hand-computed values, plain-NumPy oracles (loops), stop-gradients
both ways, jit and no jit, misuse errors, and the TDRule builders through `td_loss`."""

import functools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tdkit import distributional as dist
from tdkit import grads, losses, types, values

# --------------------------------------------------------------------------------------
# Plain-NumPy oracles, written with loops from the papers' definitions.


def np_softmax(x):
    e = np.exp(np.asarray(x, np.float64) - np.max(x))
    return e / e.sum()


def np_project(z_p, probs, z_q):
    """Each source atom, clipped to the support, splits its mass between its two neighbours."""
    out = np.zeros(len(z_q))
    for z, p in zip(z_p, probs, strict=True):
        z = min(max(z, z_q[0]), z_q[-1])
        for i in range(len(z_q) - 1):
            if z_q[i] <= z <= z_q[i + 1]:
                frac = (z - z_q[i]) / (z_q[i + 1] - z_q[i])
                out[i] += p * (1 - frac)
                out[i + 1] += p * frac
                break
        else:  # A single-atom support.
            out[0] += p
    return out


def np_cross_entropy(target, logits):
    log_p = np.log(np_softmax(logits))
    return -sum(t * lp for t, lp in zip(target, log_p, strict=True))


def np_categorical_q(atoms_tm1, logits_tm1, a_tm1, r, d, atoms_t, logits_t, selector=None):
    means = [np.dot(np_softmax(lg), atoms_t) for lg in logits_t]
    a_t = int(np.argmax(means if selector is None else selector))
    target = np_project([r + d * z for z in atoms_t], np_softmax(logits_t[a_t]), atoms_tm1)
    return np_cross_entropy(target, logits_tm1[a_tm1])


def np_huber(u, k):
    return 0.5 * u * u if abs(u) <= k else k * (abs(u) - 0.5 * k)


def np_quantile_loss(src, taus, target, huber_param):
    total = 0.0
    for s, tau in zip(src, taus, strict=True):
        row = 0.0
        for t in target:
            u = t - s
            rho = np_huber(u, huber_param) if huber_param > 0 else abs(u)
            row += abs(tau - (1.0 if u < 0 else 0.0)) * rho
        total += row / len(target)
    return total


def np_quantile_q(dist_tm1, taus, a_tm1, r, d, dist_selector, dist_t, huber_param):
    a_t = int(np.argmax([np.mean(dist_selector[:, a]) for a in range(dist_t.shape[1])]))
    target = [r + d * q for q in dist_t[:, a_t]]
    return np_quantile_loss(dist_tm1[:, a_tm1], taus, target, huber_param)


def np_quantile_expected_sarsa(dist_tm1, taus, a_tm1, r, d, dist_t, probs, huber_param):
    return sum(p * np_quantile_loss(dist_tm1[:, a_tm1], taus, [r + d * q for q in dist_t[:, a]],
                                    huber_param) for a, p in enumerate(probs))


def midpoints(n):
    return ((2 * np.arange(n) + 1) / (2 * n)).astype(np.float32)


def f32(*xs):
    return [jnp.asarray(x, jnp.float32) for x in xs]


RNG = np.random.default_rng(0)
A, K, N, N_T = 3, 7, 5, 6


def random_case(seed):
    rng = np.random.default_rng(seed)
    gaps = rng.uniform(0.2, 2.0, K)
    atoms = (np.cumsum(gaps) - gaps.sum() / 2).astype(np.float32)  # Uneven, increasing.
    return dict(
        atoms=atoms,
        atoms_t=np.sort(rng.uniform(-4, 4, K + 2)).astype(np.float32),
        logits_tm1=(2 * rng.standard_normal((A, K))).astype(np.float32),
        logits_t=(2 * rng.standard_normal((A, K + 2))).astype(np.float32),
        selector=rng.standard_normal(A).astype(np.float32),
        a_tm1=np.int32(rng.integers(A)),
        r=np.float32(rng.uniform(-2, 2)),
        d=np.float32(rng.choice([0.0, 0.5, 0.99])),
        dist_tm1=(2 * rng.standard_normal((N, A))).astype(np.float32),
        dist_t=(2 * rng.standard_normal((N_T, A))).astype(np.float32),
        dist_selector=(2 * rng.standard_normal((4, A))).astype(np.float32),
        taus=midpoints(N),
        taus_sampled=rng.uniform(0, 1, N).astype(np.float32),
        probs=np_softmax(rng.standard_normal(A)).astype(np.float32),
    )


# --------------------------------------------------------------------------------------
# categorical_l2_project.


class ProjectionTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_by_hand(self):
        project = self.variant(dist.categorical_l2_project)
        z_q = jnp.array([0.0, 1.0])
        # 0.25 is a quarter of the way from atom 0 to atom 1: [0.75, 0.25].
        np.testing.assert_allclose(project(*f32([0.25], [1.0]), z_q), [0.75, 0.25], atol=1e-7)
        # -1 is clipped onto atom 0; 0.5 splits evenly: [0.4 + 0.3, 0.3].
        np.testing.assert_allclose(
            project(*f32([-1.0, 0.5], [0.4, 0.6]), z_q), [0.7, 0.3], atol=1e-7)
        # Uneven gaps: 2 is halfway between the atoms 1 and 3.
        np.testing.assert_allclose(
            project(*f32([2.0], [1.0], [0.0, 1.0, 3.0])), [0.0, 0.5, 0.5], atol=1e-7)
        # Onto more atoms than the source has (Kq != Kp), above the support: the end atom.
        np.testing.assert_allclose(
            project(*f32([7.0], [1.0], [0.0, 1.0, 2.0, 3.0])), [0, 0, 0, 1], atol=1e-7)

    @chex.variants(with_jit=True, without_jit=True)
    def test_against_numpy_oracle(self):
        project = self.variant(dist.categorical_l2_project)
        for seed in range(20):
            rng = np.random.default_rng(seed)
            kp, kq = rng.integers(1, 9), rng.integers(2, 9)
            z_p = rng.uniform(-6, 6, kp).astype(np.float32)  # Unsorted, partly outside.
            probs = np_softmax(rng.standard_normal(kp)).astype(np.float32)
            z_q = np.sort(rng.uniform(-4, 4, kq)).astype(np.float32)
            out = project(z_p, probs, z_q)
            np.testing.assert_allclose(out, np_project(z_p, probs, z_q), atol=1e-5)
            np.testing.assert_allclose(np.sum(out), 1.0, atol=1e-5)

    def test_evenly_spaced_support_takes_the_fast_path_with_the_same_values(self):
        """A concrete linspace support is projected by one scatter-add of two shares per
        source atom; it matches the NumPy oracle and the general formula (which jit with the
        support as an argument, i.e. traced, takes), also with Kp != Kq, duplicate atoms and
        atoms exactly on support atoms."""
        assert dist._even_gap(np.linspace(-10, 10, 51, dtype=np.float32)) == pytest.approx(0.4)
        assert dist._even_gap(np.array([0.0, 1.0, 3.0], np.float32)) is None
        assert dist._even_gap(np.array([2.0], np.float32)) is None
        general = jax.jit(dist.categorical_l2_project)

        def project_onto(z_p, probs, z_q):  # z_q bound by partial: concrete under jit
            return dist.categorical_l2_project(z_p, probs, z_q)

        cases = [(-10, 10, 51, 51), (0, 200, 51, 51), (-1, 1, 3, 3), (0, 10, 11, 7),
                 (-5, 5, 2, 9)]
        for seed, (lo, hi, k_q, k_p) in enumerate(cases):
            rng = np.random.default_rng(seed)
            z_q = np.linspace(lo, hi, k_q, dtype=np.float32)
            z_p = (rng.uniform(1.2 * lo - 1, 1.2 * hi + 1, k_p)).astype(np.float32)
            z_p[:2] = z_q[[0, -1]]  # exactly on the end atoms
            z_p[2] = z_q[k_q // 2]  # exactly on an inner atom
            z_p[-1] = z_p[-2]  # a duplicate: both shares add up
            probs = np_softmax(rng.standard_normal(k_p)).astype(np.float32)
            fast = jax.jit(functools.partial(project_onto, z_q=z_q))
            assert "scatter-add" in str(jax.make_jaxpr(fast)(z_p, probs))
            assert "scatter-add" not in str(jax.make_jaxpr(general)(z_p, probs, z_q))
            out = fast(z_p, probs)
            assert out.shape == (k_q,)
            np.testing.assert_allclose(out, np_project(z_p, probs, z_q), atol=1e-5)
            np.testing.assert_allclose(out, general(z_p, probs, z_q), atol=1e-5)
            np.testing.assert_allclose(np.sum(out), 1.0, atol=1e-5)
            # Derivatives w.r.t. probs and z_p, reverse and forward mode, as the general one
            # (w.r.t. z_p only off the kinks: atoms exactly on support atoms have one-sided
            # derivatives, and the two formulas may pick different sides).
            weights = rng.standard_normal(k_q).astype(np.float32)
            smooth = np.ones(k_p, bool)
            smooth[:3] = False
            def objective(z_p, probs, fn, z_q, weights):
                return jnp.dot(fn(z_p, probs, z_q), weights)

            for argnums in (0, 1):
                for diff in (jax.grad, jax.jacfwd):
                    got = diff(functools.partial(
                        objective, fn=project_onto, z_q=z_q, weights=weights),
                        argnums)(z_p, probs)
                    want = diff(functools.partial(
                        objective, fn=general, z_q=z_q, weights=weights), argnums)(z_p, probs)
                    keep = smooth if argnums == 0 else slice(None)
                    np.testing.assert_allclose(got[keep], want[keep], atol=1e-4)

    def test_evenly_spaced_fast_path_in_float64_and_with_nan(self):
        with jax.enable_x64(True):
            z_q = np.linspace(0.0, 1.0, 5)
            z_p = np.array([0.1, 0.3333, 0.99, -4.0])
            probs = np.array([0.1, 0.2, 0.3, 0.4])
            out = dist.categorical_l2_project(z_p, probs, z_q)
            assert out.dtype == jnp.float64
            np.testing.assert_allclose(out, np_project(z_p, probs, z_q), rtol=1e-12,
                                       atol=1e-14)
        # A NaN atom is not dropped: the projection (and any loss on it) is NaN.
        z_q = np.linspace(0.0, 1.0, 5, dtype=np.float32)
        out = dist.categorical_l2_project(
            np.array([0.5, np.nan], np.float32), np.array([0.5, 0.5], np.float32), z_q)
        assert np.isnan(out).any()

    def test_batched_by_vmap(self):
        z_p = RNG.uniform(-3, 3, (4, 5)).astype(np.float32)
        probs = np.stack([np_softmax(RNG.standard_normal(5)) for _ in range(4)]).astype(np.float32)
        z_q = np.linspace(-2, 2, 6, dtype=np.float32)
        out = jax.vmap(dist.categorical_l2_project, in_axes=(0, 0, None))(z_p, probs, z_q)
        for b in range(4):
            np.testing.assert_allclose(out[b], np_project(z_p[b], probs[b], z_q), atol=1e-5)


# --------------------------------------------------------------------------------------
# Categorical TD, Q-learning, double Q-learning.


class CategoricalTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_td_learning_by_hand(self):
        # Atoms [0, 1]; next probs [0.25, 0.75]; r = 0.25, discount = 0.5: target atoms
        # [0.25, 0.75] project to 0.25 * [0.75, 0.25] + 0.75 * [0.25, 0.75] = [0.375, 0.625].
        # Predicted probs [0.25, 0.75]: loss = -(0.375 log 0.25 + 0.625 log 0.75).
        atoms = jnp.array([0.0, 1.0])
        logits = jnp.array([0.0, math.log(3.0)])
        out = self.variant(dist.categorical_td_learning)(
            atoms, logits, *f32(0.25, 0.5), atoms, logits)
        expected = -(0.375 * math.log(0.25) + 0.625 * math.log(0.75))
        np.testing.assert_allclose(out, expected, rtol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_q_learning_by_hand(self):
        # Action 1 has the larger mean (0.75 vs 0.25) at t; terminal (discount 0), r = 0.5:
        # the target is [0.5, 0.5]; the taken action 0 predicts [0.5, 0.5]: loss = log 2.
        atoms = jnp.array([0.0, 1.0])
        logits_tm1 = jnp.array([[0.0, 0.0], [5.0, -5.0]])
        logits_t = jnp.array([[math.log(3.0), 0.0], [0.0, math.log(3.0)]])
        out = self.variant(dist.categorical_q_learning)(
            atoms, logits_tm1, jnp.int32(0), *f32(0.5, 0.0), atoms, logits_t)
        np.testing.assert_allclose(out, math.log(2.0), rtol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_against_numpy_oracle(self):
        q_fn = self.variant(dist.categorical_q_learning)
        double_fn = self.variant(dist.categorical_double_q_learning)
        td_fn = self.variant(dist.categorical_td_learning)
        for seed in range(10):
            c = random_case(seed)
            args = (c["atoms"], c["logits_tm1"], c["a_tm1"], c["r"], c["d"], c["atoms_t"],
                    c["logits_t"])
            np.testing.assert_allclose(q_fn(*args), np_categorical_q(*args), rtol=1e-5)
            np.testing.assert_allclose(
                double_fn(*args, c["selector"]), np_categorical_q(*args, c["selector"]),
                rtol=1e-5)
            v_args = (c["atoms"], c["logits_tm1"][0], c["r"], c["d"], c["atoms_t"],
                      c["logits_t"][0])
            target = np_project(c["r"] + c["d"] * c["atoms_t"], np_softmax(c["logits_t"][0]),
                                c["atoms"])
            np.testing.assert_allclose(
                td_fn(*v_args), np_cross_entropy(target, c["logits_tm1"][0]), rtol=1e-5)

    def test_batched_by_vmap(self):
        cases = [random_case(s) for s in range(4)]
        stack = lambda k: np.stack([c[k] for c in cases])
        out = jax.vmap(dist.categorical_q_learning, in_axes=(None, 0, 0, 0, 0, None, 0))(
            cases[0]["atoms"], stack("logits_tm1"), stack("a_tm1"), stack("r"), stack("d"),
            cases[0]["atoms_t"], stack("logits_t"))
        for b, c in enumerate(cases):
            expected = np_categorical_q(cases[0]["atoms"], c["logits_tm1"], c["a_tm1"], c["r"],
                                        c["d"], cases[0]["atoms_t"], c["logits_t"])
            np.testing.assert_allclose(out[b], expected, rtol=1e-5)

    def test_stop_gradients(self):
        c = random_case(1)
        c["d"] = np.float32(0.9)
        rules = {
            "td": lambda lt1, lt, s: dist.categorical_td_learning(
                c["atoms"], lt1[0], c["r"], c["d"], c["atoms_t"], lt[0], s),
            "q": lambda lt1, lt, s: dist.categorical_q_learning(
                c["atoms"], lt1, c["a_tm1"], c["r"], c["d"], c["atoms_t"], lt, s),
            "double": lambda lt1, lt, s: dist.categorical_double_q_learning(
                c["atoms"], lt1, c["a_tm1"], c["r"], c["d"], c["atoms_t"], lt, c["selector"], s),
        }
        for name, rule in rules.items():
            for stop in (True, False):
                g_tm1, g_t = jax.grad(lambda a, b, rule=rule, stop=stop: rule(a, b, stop),
                                      argnums=(0, 1))(c["logits_tm1"], c["logits_t"])
                assert np.any(g_tm1 != 0), name  # The prediction always learns.
                if stop:
                    np.testing.assert_array_equal(g_t, 0.0, err_msg=name)
                else:
                    assert np.any(np.abs(g_t) > 1e-6), name


# --------------------------------------------------------------------------------------
# Quantile regression loss, QR Q-learning, expected Sarsa, IQN.


TAUS3 = jnp.array([1 / 6, 1 / 2, 5 / 6])


class QuantileTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_by_hand(self):
        # src [0, 1, 2] at levels [1/6, 1/2, 5/6], target [1, 3]: u = [[1, 3], [0, 2], [-1, 1]].
        # |u|, mean over targets: row 0: 1/6 * (1 + 3) / 2 = 1/3; row 1: 1/2 * (0 + 2) / 2 = 1/2;
        # row 2: u = -1 weighs |5/6 - 1| = 1/6, u = 1 weighs 5/6: (1/6 + 5/6) / 2 = 1/2.
        # Total 1/3 + 1/2 + 1/2 = 4/3. Huber 1: rho = [[.5, 2.5], [0, 1.5], [.5, .5]]:
        # 1/6 * 1.5 + 1/2 * 0.75 + (1/6 * .5 + 5/6 * .5) / 2 = 0.25 + 0.375 + 0.25 = 0.875.
        fn = self.variant(dist.quantile_regression_loss, static_argnums=3)
        src, target = f32([0.0, 1.0, 2.0], [1.0, 3.0])
        np.testing.assert_allclose(fn(src, TAUS3, target, 0.0), 4 / 3, rtol=1e-6)
        np.testing.assert_allclose(fn(src, TAUS3, target, 1.0), 0.875, rtol=1e-6)
        np.testing.assert_allclose(
            dist.quantile_regression_loss(src, TAUS3, target), 4 / 3, rtol=1e-6)  # Default 0.

    @chex.variants(with_jit=True, without_jit=True)
    def test_against_numpy_oracle(self):
        fn = self.variant(dist.quantile_regression_loss, static_argnums=3)
        for seed in range(10):
            rng = np.random.default_rng(seed)
            n, m = rng.integers(1, 8), rng.integers(1, 8)
            src = (2 * rng.standard_normal(n)).astype(np.float32)
            taus = rng.uniform(0.01, 0.99, n).astype(np.float32)
            target = (2 * rng.standard_normal(m)).astype(np.float32)
            for huber in (0.0, 0.5, 2.0):
                np.testing.assert_allclose(
                    fn(src, taus, target, huber), np_quantile_loss(src, taus, target, huber),
                    rtol=1e-5, atol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_q_learning_variants_against_numpy_oracles(self):
        q_fn = self.variant(dist.quantile_q_learning, static_argnums=7)
        sarsa_fn = self.variant(dist.quantile_expected_sarsa, static_argnums=7)
        iqn_fn = self.variant(dist.iqn_q_learning, static_argnums=7)
        for seed in range(8):
            c = random_case(seed)
            common = (c["a_tm1"], c["r"], c["d"])
            for huber in (0.0, 1.0):
                np.testing.assert_allclose(
                    q_fn(c["dist_tm1"], c["taus"], *common, c["dist_selector"], c["dist_t"],
                         huber),
                    np_quantile_q(c["dist_tm1"], c["taus"], *common, c["dist_selector"],
                                  c["dist_t"], huber), rtol=1e-5)
                np.testing.assert_allclose(
                    sarsa_fn(c["dist_tm1"], c["taus"], *common, c["dist_t"], c["probs"], huber),
                    np_quantile_expected_sarsa(c["dist_tm1"], c["taus"], *common, c["dist_t"],
                                               c["probs"], huber), rtol=1e-5)
                # IQN: sampled levels, N = 5 predictions against N' = 6 target samples.
                np.testing.assert_allclose(
                    iqn_fn(c["dist_tm1"], c["taus_sampled"], *common, c["dist_selector"],
                           c["dist_t"], huber),
                    np_quantile_q(c["dist_tm1"], c["taus_sampled"], *common, c["dist_selector"],
                                  c["dist_t"], huber), rtol=1e-5)

    def test_iqn_defaults_to_huber_one(self):
        c = random_case(3)
        args = (c["dist_tm1"], c["taus_sampled"], c["a_tm1"], c["r"], c["d"],
                c["dist_selector"], c["dist_t"])
        np.testing.assert_allclose(dist.iqn_q_learning(*args), np_quantile_q(*args, 1.0),
                                   rtol=1e-5)

    def test_traced_huber_param(self):
        c = random_case(4)
        src, target = c["dist_tm1"][:, 0], c["dist_t"][:, 0]
        fn = jax.jit(dist.quantile_regression_loss)
        for huber in (0.0, 1.5):
            np.testing.assert_allclose(
                fn(src, c["taus"], target, jnp.float32(huber)),
                np_quantile_loss(src, c["taus"], target, huber), rtol=1e-5)

    def test_batched_by_vmap(self):
        cases = [random_case(s) for s in range(4)]
        stack = lambda k: np.stack([c[k] for c in cases])
        out = jax.vmap(dist.quantile_q_learning, in_axes=(0, None, 0, 0, 0, 0, 0))(
            stack("dist_tm1"), cases[0]["taus"], stack("a_tm1"), stack("r"), stack("d"),
            stack("dist_selector"), stack("dist_t"))
        for b, c in enumerate(cases):
            expected = np_quantile_q(c["dist_tm1"], cases[0]["taus"], c["a_tm1"], c["r"], c["d"],
                                     c["dist_selector"], c["dist_t"], 0.0)
            np.testing.assert_allclose(out[b], expected, rtol=1e-5)

    def test_stop_gradients(self):
        c = random_case(2)
        c["d"] = np.float32(0.9)
        common = (c["a_tm1"], c["r"], c["d"])
        rules = {
            "quantile_regression_loss": lambda q_tm1, q_t, s: dist.quantile_regression_loss(
                q_tm1[:, 0], c["taus"], q_t[:, 0], 1.0, s),
            "quantile_q_learning": lambda q_tm1, q_t, s: dist.quantile_q_learning(
                q_tm1, c["taus"], *common, c["dist_selector"], q_t, 1.0, s),
            "iqn_q_learning": lambda q_tm1, q_t, s: dist.iqn_q_learning(
                q_tm1, c["taus_sampled"], *common, c["dist_selector"], q_t, 1.0, s),
            "quantile_expected_sarsa": lambda q_tm1, q_t, s: dist.quantile_expected_sarsa(
                q_tm1, c["taus"], *common, q_t, c["probs"], 1.0, s),
        }
        for name, rule in rules.items():
            for stop in (True, False):
                g_tm1, g_t = jax.grad(lambda a, b, rule=rule, stop=stop: rule(a, b, stop),
                                      argnums=(0, 1))(c["dist_tm1"], c["dist_t"])
                assert np.any(g_tm1 != 0), name
                if stop:
                    np.testing.assert_array_equal(g_t, 0.0, err_msg=name)
                else:
                    assert np.any(np.abs(g_t) > 1e-6), name
        # Expected Sarsa also stops the policy probabilities.
        for stop in (True, False):
            g = jax.grad(lambda p, stop=stop: dist.quantile_expected_sarsa(
                c["dist_tm1"], c["taus"], *common, c["dist_t"], p, 1.0, stop))(c["probs"])
            assert np.all(g == 0) == stop


# --------------------------------------------------------------------------------------
# Misuse.


class MisuseTest(chex.TestCase):

    def setUp(self):
        super().setUp()
        self.c = random_case(0)

    def test_batch_passed_to_one_example_functions(self):
        c = self.c
        batch = lambda x: np.stack([x, x])
        with pytest.raises(AssertionError, match="categorical_l2_project: argument `z_p` must have"
                                                 " rank 1"):
            dist.categorical_l2_project(batch(c["atoms"]), batch(c["atoms"]), c["atoms"])
        with pytest.raises(AssertionError, match="categorical_q_learning: argument "
                                                 "`q_logits_tm1` must have rank 2"):
            dist.categorical_q_learning(c["atoms"], batch(c["logits_tm1"]), c["a_tm1"], c["r"],
                                        c["d"], c["atoms_t"], c["logits_t"])
        with pytest.raises(AssertionError, match="quantile_q_learning: argument `r_t` must have "
                                                 "rank 0"):
            dist.quantile_q_learning(c["dist_tm1"], c["taus"], c["a_tm1"], batch(c["r"]),
                                     c["d"], c["dist_selector"], c["dist_t"])
        with pytest.raises(AssertionError, match="iqn_q_learning: argument `dist_q_tm1` must have "
                                                 "rank 2"):
            dist.iqn_q_learning(batch(c["dist_tm1"]), c["taus"], c["a_tm1"], c["r"], c["d"],
                                c["dist_selector"], c["dist_t"])

    def test_dtypes(self):
        c = self.c
        with pytest.raises(AssertionError, match="argument `a_tm1` must have a int dtype"):
            dist.categorical_q_learning(c["atoms"], c["logits_tm1"], np.float32(0), c["r"],
                                        c["d"], c["atoms_t"], c["logits_t"])
        with pytest.raises(AssertionError, match="argument `tau_src` must have a float dtype"):
            dist.quantile_regression_loss(c["dist_tm1"][:, 0], np.arange(N), c["dist_t"][:, 0])

    def test_mismatched_counts(self):
        c = self.c
        with pytest.raises(AssertionError, match="argument `q_logits_tm1`.*one logit per atom"):
            dist.categorical_q_learning(c["atoms"][:-1], c["logits_tm1"], c["a_tm1"], c["r"],
                                        c["d"], c["atoms_t"], c["logits_t"])
        with pytest.raises(AssertionError, match="argument `q_logits_t`.*one logit per atom"):
            dist.categorical_double_q_learning(
                c["atoms"], c["logits_tm1"], c["a_tm1"], c["r"], c["d"], c["atoms"],
                c["logits_t"], c["selector"])
        with pytest.raises(AssertionError, match="argument `q_t_selector`.*one value per"):
            dist.categorical_double_q_learning(
                c["atoms"], c["logits_tm1"], c["a_tm1"], c["r"], c["d"], c["atoms_t"],
                c["logits_t"], c["selector"][:-1])
        with pytest.raises(AssertionError, match="same shape, got `v_atoms_tm1`"):
            dist.categorical_td_learning(c["atoms"][:-1], c["logits_tm1"][0], c["r"], c["d"],
                                         c["atoms_t"], c["logits_t"][0])
        with pytest.raises(AssertionError, match="same shape, got `z_p`"):
            dist.categorical_l2_project(c["atoms"], c["atoms"][:-1], c["atoms"])
        with pytest.raises(AssertionError, match="argument `tau_q_tm1`.*one level per quantile"):
            dist.quantile_q_learning(c["dist_tm1"], c["taus"][:-1], c["a_tm1"], c["r"], c["d"],
                                     c["dist_selector"], c["dist_t"])
        with pytest.raises(AssertionError, match="argument `dist_q_t`.*as many actions"):
            dist.quantile_q_learning(c["dist_tm1"], c["taus"], c["a_tm1"], c["r"], c["d"],
                                     c["dist_selector"], c["dist_t"][:, :-1])
        with pytest.raises(AssertionError, match="argument `probs_a_t`.*one probability"):
            dist.quantile_expected_sarsa(c["dist_tm1"], c["taus"], c["a_tm1"], c["r"], c["d"],
                                         c["dist_t"], c["probs"][:-1])

    def test_unsorted_support(self):
        c = self.c
        with pytest.raises(ValueError, match="argument `z_q`.*strictly increasing"):
            dist.categorical_l2_project(*f32([0.5], [1.0], [1.0, 0.0]))
        with pytest.raises(ValueError, match="argument `z_q`.*strictly increasing"):
            dist.categorical_l2_project(*f32([0.5], [1.0], [0.0, 1.0, 1.0]))  # A tie.
        with pytest.raises(ValueError, match="categorical_q_learning: argument `q_atoms_tm1`"):
            dist.categorical_q_learning(c["atoms"][::-1], c["logits_tm1"], c["a_tm1"], c["r"],
                                        c["d"], c["atoms_t"], c["logits_t"])
        with pytest.raises(ValueError, match="categorical_td_learning: argument `v_atoms_t`"):
            dist.categorical_td_learning(c["atoms"], c["logits_tm1"][0], c["r"], c["d"],
                                         c["atoms_t"][::-1], c["logits_t"][0])

    def test_taus_outside_unit_interval(self):
        c = self.c
        with pytest.raises(ValueError, match=r"argument `tau_src`.*\(0, 1\)"):
            dist.quantile_regression_loss(*f32([0.0, 1.0], [0.0, 1.0], [0.5]))  # linspace(0, 1)
        with pytest.raises(ValueError, match=r"quantile_q_learning: argument `tau_q_tm1`"):
            dist.quantile_q_learning(c["dist_tm1"], c["taus"] + 1, c["a_tm1"], c["r"], c["d"],
                                     c["dist_selector"], c["dist_t"])
        with pytest.raises(ValueError, match=r"iqn_q_learning: argument `tau_tm1`.*\[0, 1\]"):
            dist.iqn_q_learning(c["dist_tm1"], c["taus"] - 0.5, c["a_tm1"], c["r"], c["d"],
                                c["dist_selector"], c["dist_t"])
        # IQN samples from U[0, 1), which may return exactly 0.
        taus = c["taus_sampled"].copy()
        taus[0] = 0.0
        dist.iqn_q_learning(c["dist_tm1"], taus, c["a_tm1"], c["r"], c["d"],
                            c["dist_selector"], c["dist_t"])

    def test_negative_huber_param(self):
        with pytest.raises(ValueError, match="argument `huber_param` must be a number >= 0"):
            dist.quantile_regression_loss(*f32([0.0], [0.5], [1.0]), huber_param=-1.0)

    def test_traced_values_skip_value_checks(self):
        # Under jit the support and levels are traced: only shapes are checked.
        bad_taus = jnp.array([0.0, 1.5])
        out = jax.jit(dist.quantile_regression_loss)(*f32([0.0, 1.0]), bad_taus, *f32([0.5]))
        assert np.isfinite(out)
        out = jax.jit(dist.categorical_l2_project)(*f32([0.5], [1.0], [1.0, 0.0]))
        assert out.shape == (2,)

    def test_rule_builders(self):
        with pytest.raises(ValueError, match="categorical_rule: argument `atoms`.*strictly"):
            dist.categorical_rule(np.array([1.0, 0.0]))
        with pytest.raises(AssertionError, match="categorical_rule: argument `atoms` must have "
                                                 "rank 1"):
            dist.categorical_rule(np.zeros((2, 3)))
        with pytest.raises(ValueError, match="quantile_rule: argument `taus` must be a positive"):
            dist.quantile_rule(0)
        with pytest.raises(ValueError, match=r"quantile_rule: argument `taus`.*\(0, 1\)"):
            dist.quantile_rule(np.linspace(0, 1, 5))
        with pytest.raises(ValueError, match="quantile_rule: argument `huber_param`"):
            dist.quantile_rule(5, huber_param=-1.0)
        np.testing.assert_allclose(dist.quantile_midpoints(4), [0.125, 0.375, 0.625, 0.875])


# --------------------------------------------------------------------------------------
# TDRule builders through td_loss.

OBS, HIDDEN = 4, (16,)


def reshaped_mlp(num_actions, k):
    base = values.mlp(HIDDEN, num_outputs=num_actions * k)
    return values.ValueFn(base.init, lambda p, o: base.apply(p, o).reshape(num_actions, k))


def setup_td_loss(k, batch_size=8):
    value_fn = reshaped_mlp(A, k)
    params = value_fn.init(jax.random.PRNGKey(0), jnp.zeros(OBS))
    target_params = value_fn.init(jax.random.PRNGKey(1), jnp.zeros(OBS))
    batch = types.random_transitions(jax.random.PRNGKey(2), batch_size, -np.ones(OBS),
                                     np.ones(OBS), A, gamma=0.9, terminal_prob=0.25)
    batch = batch._replace(r_t=jax.random.normal(jax.random.PRNGKey(3), (batch_size,)))
    return value_fn, params, target_params, batch


class RuleTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_categorical_rule_matches_function(self):
        atoms = np.linspace(-3.0, 3.0, K, dtype=np.float32)
        value_fn, params, target_params, batch = setup_td_loss(K)
        apply = jax.vmap(value_fn.apply, in_axes=(None, 0))
        logits_tm1, logits_t = apply(params, batch.obs_tm1), apply(target_params, batch.obs_t)
        selector = jax.nn.softmax(apply(params, batch.obs_t)) @ atoms  # [B, A]
        for double in (False, True):
            loss = losses.td_loss(value_fn, dist.categorical_rule(atoms, double=double),
                                       has_aux=True)
            out, td_error = self.variant(jax.vmap(loss, in_axes=(None, None, 0)))(
                params, target_params, batch)
            for b in range(len(batch.r_t)):
                args = (atoms, logits_tm1[b], batch.a_tm1[b], batch.r_t[b], batch.discount_t[b],
                        atoms, logits_t[b])
                expected = (dist.categorical_double_q_learning(*args, selector[b]) if double
                            else dist.categorical_q_learning(*args))
                np.testing.assert_allclose(out[b], expected, rtol=1e-5)
                np.testing.assert_allclose(
                    out[b], np_categorical_q(*map(np.asarray, args),
                                             np.asarray(selector[b]) if double else None),
                    rtol=1e-4)
            np.testing.assert_array_equal(td_error, out)  # The priority is the loss itself.

    @chex.variants(with_jit=True, without_jit=True)
    def test_quantile_rule_matches_function(self):
        value_fn, params, target_params, batch = setup_td_loss(N)
        apply = jax.vmap(value_fn.apply, in_axes=(None, 0))
        q_tm1, q_t = apply(params, batch.obs_tm1), apply(target_params, batch.obs_t)
        q_sel = apply(params, batch.obs_t)
        taus = midpoints(N)
        for double in (False, True):
            for rule in (dist.quantile_rule(N, double=double),
                         dist.quantile_rule(taus, huber_param=1.0, double=double)):
                loss = losses.td_loss(value_fn, rule)
                out = self.variant(jax.vmap(loss, in_axes=(None, None, 0)))(
                    params, target_params, batch)
                for b in range(len(batch.r_t)):
                    selector = q_sel[b] if double else q_t[b]
                    expected = np_quantile_q(
                        np.asarray(q_tm1[b]).T, taus, int(batch.a_tm1[b]), float(batch.r_t[b]),
                        float(batch.discount_t[b]), np.asarray(selector).T,
                        np.asarray(q_t[b]).T, 1.0)
                    np.testing.assert_allclose(out[b], expected, rtol=1e-4, atol=1e-6)

    def test_per_example_grads(self):
        atoms = np.linspace(-3.0, 3.0, K, dtype=np.float32)
        for k, rule in ((K, dist.categorical_rule(atoms)), (N, dist.quantile_rule(N)),
                        (N, dist.quantile_rule(N, double=True))):
            value_fn, params, target_params, batch = setup_td_loss(k, batch_size=6)
            loss = losses.td_loss(value_fn, rule)
            per_example = jax.jit(grads.per_example_grads(loss, in_axes=(None, None, 0)))(
                params, target_params, batch)
            for b in (0, 3):
                one = jax.tree.map(lambda x, b=b: x[b], batch)
                expected = jax.grad(loss)(params, target_params, one)
                chex.assert_trees_all_close(
                    jax.tree.map(lambda x, b=b: x[b], per_example), expected, rtol=1e-4,
                    atol=1e-6)
            # Target params never receive gradient under the default stop_target_gradients.
            g_target = jax.grad(loss, argnums=1)(
                params, target_params, jax.tree.map(lambda x: x[0], batch))
            chex.assert_trees_all_equal(
                g_target, jax.tree.map(jnp.zeros_like, target_params))

    def test_rule_rejects_wrong_atom_count(self):
        value_fn, params, target_params, batch = setup_td_loss(K)
        one = jax.tree.map(lambda x: x[0], batch)
        loss = losses.td_loss(value_fn, dist.categorical_rule(np.linspace(-1, 1, K + 1)))
        with pytest.raises(AssertionError, match=r"rule 'categorical_q_learning' needs values "
                                                 r"\[A, 8\]"):
            loss(params, target_params, one)
        loss = losses.td_loss(value_fn, dist.quantile_rule(K - 1))
        with pytest.raises(AssertionError, match=r"rule 'quantile_q_learning' needs values"):
            loss(params, target_params, one)
        # A value function returning [A] is refused by td_loss itself (value_ndim=2).
        flat = values.mlp(HIDDEN, num_outputs=A)
        flat_params = flat.init(jax.random.PRNGKey(0), jnp.zeros(OBS))
        loss = losses.td_loss(flat, dist.quantile_rule(K))
        with pytest.raises(AssertionError, match="needs values of rank 2"):
            loss(flat_params, flat_params, one)
