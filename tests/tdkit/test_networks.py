"""tdkit.networks: dueling heads, noisy layers, IQN, checked by hand and by NumPy oracles.

Oracles: NumPy forward passes (float64) written from the papers' equations, numbers worked
out by hand, sample statistics of the noise, and Python loops of single-example gradients.
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tdkit
from tdkit import grads, losses, networks, values

KEY = jax.random.key(0)
OBS = jnp.array([0.5, -1.0, 2.0, 0.1])


def _perturbed(params, seed=0, scale=0.3):
    """Non-trivial biases, scales and offsets so that every parameter matters."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda p: jnp.asarray(np.asarray(p) + scale * rng.standard_normal(p.shape), jnp.float32),
        params)


def _np_hidden(layer, x, layer_norm, w="w", b="b", eps=1e-5):
    z = np.asarray(x, np.float64) @ np.asarray(layer[w], np.float64) + np.asarray(layer[b])
    if layer_norm:
        mean, var = z.mean(-1, keepdims=True), z.var(-1, keepdims=True)
        z = (z - mean) / np.sqrt(var + eps) * np.asarray(layer["scale"]) + np.asarray(
            layer["offset"])
    return np.maximum(z, 0.0)


def _np_linear(layer, x, w="w", b="b"):
    return np.asarray(x, np.float64) @ np.asarray(layer[w], np.float64) + np.asarray(layer[b])


def _batch(value_fn, params, batch_size=6, num_actions=3, seed=0):
    rng = np.random.default_rng(seed)
    return tdkit.Transition(
        obs_tm1=jnp.asarray(rng.standard_normal((batch_size, 4)), jnp.float32),
        a_tm1=jnp.asarray(rng.integers(0, num_actions, batch_size), jnp.int32),
        r_t=jnp.asarray(rng.standard_normal(batch_size), jnp.float32),
        discount_t=jnp.full((batch_size,), 0.9, jnp.float32),
        obs_t=jnp.asarray(rng.standard_normal((batch_size, 4)), jnp.float32))


def _index(tree, i):
    return jax.tree.map(lambda x: x[i], tree)


def _loop_grads(loss, params, target, batch):
    """Oracle: one jax.grad per transition in a Python loop, stacked."""
    grad = jax.jit(jax.grad(loss))
    per = [grad(params, target, _index(batch, i)) for i in range(len(batch.r_t))]
    return jax.tree.map(lambda *g: jnp.stack(g), *per)


def _q_learning_oracle(q_tm1, q_t, t):
    delta = float(t.r_t) + float(t.discount_t) * np.max(q_t) - q_tm1[int(t.a_tm1)]
    return 0.5 * delta**2


# --------------------------------------------------------------------------------------
# Dueling.
# --------------------------------------------------------------------------------------


class DuelingTest(chex.TestCase):

    def test_param_shapes(self):
        params = networks.dueling_mlp([8, 5], 3, num_atoms=7, layer_norm=True).init(KEY, OBS)
        chex.assert_trees_all_equal_shapes(params, {
            "torso": [{"w": jnp.zeros((4, 8)), "b": jnp.zeros(8), "scale": jnp.zeros(8),
                       "offset": jnp.zeros(8)},
                      {"w": jnp.zeros((8, 5)), "b": jnp.zeros(5), "scale": jnp.zeros(5),
                       "offset": jnp.zeros(5)}],
            "value": {"w": jnp.zeros((5, 7)), "b": jnp.zeros(7)},
            "advantage": {"w": jnp.zeros((5, 21)), "b": jnp.zeros(21)}})
        chex.assert_type(jax.tree.leaves(params), jnp.float32)

    @chex.variants(with_jit=True, without_jit=True)
    def test_q_is_v_plus_centred_advantage(self):
        for num_atoms, ln in ((None, False), (None, True), (4, False), (4, True)):
            vf = networks.dueling_mlp([6], 3, num_atoms, layer_norm=ln)
            params = _perturbed(vf.init(KEY, OBS))
            q = np.asarray(self.variant(vf.apply)(params, OBS), np.float64)
            # The two streams by hand.
            h = _np_hidden(params["torso"][0], OBS, ln)
            k = 1 if num_atoms is None else num_atoms
            v = _np_linear(params["value"], h).reshape(1, k)
            a = _np_linear(params["advantage"], h).reshape(3, k)
            expected = v + a - a.mean(axis=0, keepdims=True)
            chex.assert_shape(q, (3,) if num_atoms is None else (3, num_atoms))
            q = q.reshape(3, k)
            np.testing.assert_allclose(q, expected, rtol=1e-5, atol=1e-5)
            # The identity: the mean advantage is removed, per atom, and v is recovered.
            np.testing.assert_allclose(q - q.mean(0), a - a.mean(0), rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(q.mean(0), v[0], rtol=1e-5, atol=1e-5)

    def test_no_hidden_layers(self):
        vf = networks.dueling_mlp([], 2)
        params = {"torso": [], "value": {"w": jnp.array([[1.0], [2.0]]), "b": jnp.array([0.5])},
                  "advantage": {"w": jnp.array([[1.0, 0.0], [0.0, 3.0]]),
                                "b": jnp.array([0.0, 1.0])}}
        # v = 1 + 2 + 0.5 = 3.5; a = [1, 3 + 1] = [1, 4], mean 2.5: q = [2, 5].
        np.testing.assert_allclose(vf.apply(params, jnp.array([1.0, 1.0])), [2.0, 5.0])

    def test_bad_input_raises(self):
        with pytest.raises(ValueError, match="dueling_mlp: argument `num_atoms` must be a posi"):
            networks.dueling_mlp([8], 3, num_atoms=0)
        with pytest.raises(ValueError, match="dueling_mlp: argument `num_actions` must be a"):
            networks.dueling_mlp([8], None)
        with pytest.raises(ValueError, match=r"dueling_mlp: argument `hidden_sizes\[0\]`"):
            networks.dueling_mlp([0], 3)
        with pytest.raises(ValueError, match="dueling_mlp: argument `layer_norm_eps` must be > 0"):
            networks.dueling_mlp([4], 3, layer_norm_eps=0.0)
        vf = networks.dueling_mlp([8], 3)
        params = vf.init(KEY, OBS)
        with pytest.raises(AssertionError, match=r"dueling_mlp.apply: argument `obs` must have "
                           r"shape \(4,\) \(ONE observation; use jax.vmap for a batch\)"):
            vf.apply(params, jnp.zeros((2, 4)))
        with pytest.raises(AssertionError, match="dueling_mlp.apply: argument `obs` must have a "
                           "float dtype"):
            vf.apply(params, jnp.zeros(4, jnp.int32))
        with pytest.raises(AssertionError, match="dueling_mlp.init: argument `example_obs`"):
            vf.init(KEY, jnp.zeros((2, 4)))


# --------------------------------------------------------------------------------------
# Noisy layers and networks.
# --------------------------------------------------------------------------------------


class NoisyLayerTest(chex.TestCase):

    def test_init_values_by_hand(self):
        # p = 16 inputs: mu ~ U(-1/4, 1/4), sigma = sigma0 / 4.
        params = networks.noisy_linear_init(KEY, 16, 50, sigma0=0.5)
        chex.assert_trees_all_equal_shapes(params, {
            "w_mu": jnp.zeros((16, 50)), "w_sigma": jnp.zeros((16, 50)),
            "b_mu": jnp.zeros(50), "b_sigma": jnp.zeros(50)})
        np.testing.assert_array_equal(params["w_sigma"], np.full((16, 50), 0.125, np.float32))
        np.testing.assert_array_equal(params["b_sigma"], np.full(50, 0.125, np.float32))
        for name in ("w_mu", "b_mu"):
            mu = np.asarray(params[name])
            chex.assert_type(mu, jnp.float32)
            assert mu.min() >= -0.25 and mu.max() <= 0.25
        w_mu = np.asarray(params["w_mu"])
        assert w_mu.min() < -0.24 and w_mu.max() > 0.24  # Spread over the whole interval.
        assert abs(w_mu.mean()) < 0.02 and abs(w_mu.var() - 0.5**2 / 12) < 0.003  # Var U(-a,a).
        dopamine = networks.noisy_linear_init(KEY, 4, 2, sigma0=0.1)
        np.testing.assert_allclose(dopamine["w_sigma"], np.full((4, 2), 0.05), rtol=1e-6)

    def test_factorised_noise_is_rank_one_with_the_bias_noise_as_factor(self):
        eps_w, eps_b = networks.factorised_noise(KEY, 3, 4)
        chex.assert_shape((eps_w, eps_b), ((3, 4), (4,)))
        chex.assert_type((eps_w, eps_b), jnp.float32)
        singular = np.linalg.svd(np.asarray(eps_w, np.float64), compute_uv=False)
        assert singular[0] > 0.1 and np.all(singular[1:] < 1e-6 * singular[0])
        # eps_w = outer(f(e_in), eps_b): every row is a multiple of the bias noise.
        f_in = np.asarray(eps_w[:, 0]) / np.asarray(eps_b[0])
        np.testing.assert_allclose(eps_w, np.outer(f_in, eps_b), rtol=1e-5, atol=1e-6)

    def test_factorised_noise_statistics(self):
        # f(x) = sign(x) sqrt(|x|), x ~ N(0, 1): E f = 0, E f^2 = E|x| = sqrt(2 / pi),
        # E f^4 = E x^2 = 1; entries of eps_w: E = 0, E eps_w^2 = E|x| E|y| = 2 / pi.
        keys = jax.random.split(KEY, 20_000)
        eps_w, eps_b = jax.jit(jax.vmap(lambda k: networks.factorised_noise(k, 2, 3)))(keys)
        eps_w, eps_b = np.asarray(eps_w, np.float64), np.asarray(eps_b, np.float64)
        np.testing.assert_allclose(eps_b.mean(0), 0.0, atol=0.03)
        np.testing.assert_allclose((eps_b**2).mean(0), np.sqrt(2 / np.pi), atol=0.02)
        np.testing.assert_allclose((eps_b**4).mean(0), 1.0, atol=0.05)
        np.testing.assert_allclose(eps_w.mean(0), 0.0, atol=0.03)
        np.testing.assert_allclose((eps_w**2).mean(0), 2 / np.pi, atol=0.03)
        # Factorised, not independent: eps_w[i, j]^2 = |x_i| |y_j|, so two entries of one column
        # share |y_j| and their squares correlate, (2/pi)(1 - 2/pi) / (1 - 4/pi^2) = 0.389;
        # entries in different rows and columns share nothing.
        sq = eps_w**2
        shared = (2 / np.pi) * (1 - 2 / np.pi) / (1 - 4 / np.pi**2)
        np.testing.assert_allclose(np.corrcoef(sq[:, 0, 0], sq[:, 1, 0])[0, 1], shared,
                                   atol=0.04)
        np.testing.assert_allclose(np.corrcoef(sq[:, 0, 0], sq[:, 1, 1])[0, 1], 0.0, atol=0.04)
        np.testing.assert_allclose(np.corrcoef(eps_b[:, 0], eps_b[:, 1])[0, 1], 0.0, atol=0.04)

    @chex.variants(with_jit=True, without_jit=True)
    def test_noisy_linear_by_hand(self):
        params = _perturbed(networks.noisy_linear_init(KEY, 3, 2))
        x = jnp.array([1.0, -2.0, 0.5])
        apply = self.variant(networks.noisy_linear)
        mean = _np_linear(params, x, "w_mu", "b_mu")
        np.testing.assert_allclose(apply(params, x), mean, rtol=1e-5, atol=1e-6)
        key = jax.random.key(3)
        eps_w, eps_b = (np.asarray(e, np.float64) for e in networks.factorised_noise(key, 3, 2))
        w = np.asarray(params["w_mu"]) + np.asarray(params["w_sigma"]) * eps_w
        b = np.asarray(params["b_mu"]) + np.asarray(params["b_sigma"]) * eps_b
        np.testing.assert_allclose(apply(params, x, key), np.asarray(x) @ w + b, rtol=1e-5,
                                   atol=1e-6)

    def test_bad_input_raises(self):
        with pytest.raises(ValueError, match="noisy_linear_init: argument `sigma0` must be"):
            networks.noisy_linear_init(KEY, 3, 2, sigma0=-0.1)
        with pytest.raises(ValueError, match="factorised_noise: argument `num_outputs` must be"):
            networks.factorised_noise(KEY, 3, 0)
        params = networks.noisy_linear_init(KEY, 3, 2)
        with pytest.raises(AssertionError, match=r"noisy_linear: argument `x` must have shape"):
            networks.noisy_linear(params, jnp.zeros(4))
        with pytest.raises(AssertionError, match=r"noisy_linear: argument `key` must be ONE PRNG"):
            networks.noisy_linear(params, jnp.zeros(3), jax.random.split(KEY, 2))


def _np_noisy_mean(params, obs, dueling, num_actions, k, layer_norm=False):
    """The noise-free NoisyNet: every layer with its mean weights."""
    x = np.asarray(obs, np.float64)
    for layer in params["torso"]:
        x = _np_hidden(layer, x, layer_norm, "w_mu", "b_mu")
    if not dueling:
        return _np_linear(params["head"], x, "w_mu", "b_mu").reshape(num_actions, k)
    v = _np_linear(params["value"], x, "w_mu", "b_mu").reshape(1, k)
    a = _np_linear(params["advantage"], x, "w_mu", "b_mu").reshape(num_actions, k)
    return v + a - a.mean(0, keepdims=True)


class NoisyMLPTest(chex.TestCase):

    def test_param_shapes_and_sigma_init(self):
        vf = networks.noisy_mlp([9], 3, num_atoms=5, dueling=True, layer_norm=True)
        params = vf.init(KEY, OBS)
        noisy = lambda i, o: {"w_mu": jnp.zeros((i, o)), "w_sigma": jnp.zeros((i, o)),
                              "b_mu": jnp.zeros(o), "b_sigma": jnp.zeros(o)}
        chex.assert_trees_all_equal_shapes(params, {
            "torso": [{**noisy(4, 9), "scale": jnp.zeros(9), "offset": jnp.zeros(9)}],
            "value": noisy(9, 5), "advantage": noisy(9, 15)})
        # sigma0 / sqrt(p): p = 4 in the torso (0.25), p = 9 in the heads (1/6).
        np.testing.assert_allclose(params["torso"][0]["w_sigma"], 0.25)
        np.testing.assert_allclose(params["torso"][0]["b_sigma"], 0.25)
        for head in ("value", "advantage"):
            np.testing.assert_allclose(params[head]["w_sigma"], 0.5 / 3, rtol=1e-6)
            np.testing.assert_allclose(params[head]["b_sigma"], 0.5 / 3, rtol=1e-6)
            assert np.abs(params[head]["w_mu"]).max() <= 1 / 3
        plain = networks.noisy_mlp([], 2, sigma0=0.2).init(KEY, OBS)
        assert sorted(plain) == ["head", "torso"] and plain["torso"] == []
        np.testing.assert_allclose(plain["head"]["w_sigma"], np.full((4, 2), 0.1), rtol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_key_none_is_the_mean_network(self):
        for num_atoms, dueling, ln in ((None, False, False), (None, True, True), (4, True, False),
                                       (4, False, True)):
            vf = networks.noisy_mlp([6, 5], 3, num_atoms, dueling=dueling, layer_norm=ln)
            params = _perturbed(vf.init(KEY, OBS))
            out = self.variant(vf.apply)(params, OBS)
            chex.assert_shape(out, (3,) if num_atoms is None else (3, num_atoms))
            k = 1 if num_atoms is None else num_atoms
            expected = _np_noisy_mean(params, OBS, dueling, 3, k, ln)
            np.testing.assert_allclose(np.reshape(out, (3, k)), expected, rtol=1e-5, atol=1e-5)
            # apply(params, obs), the ValueFn protocol, is the same network.
            np.testing.assert_array_equal(vf.apply(params, OBS), vf.apply(params, OBS, None))

    @chex.variants(with_jit=True, without_jit=True)
    def test_keys_sample_noise(self):
        vf = networks.noisy_mlp([6], 3, dueling=True)
        params = vf.init(KEY, OBS)
        apply = self.variant(vf.apply)
        a1, a2 = apply(params, OBS, jax.random.key(1)), apply(params, OBS, jax.random.key(1))
        b = apply(params, OBS, jax.random.key(2))
        mean = apply(params, OBS, None)
        np.testing.assert_array_equal(a1, a2)
        assert np.all(np.abs(np.asarray(a1) - np.asarray(b)) > 1e-4)
        assert np.all(np.abs(np.asarray(a1) - np.asarray(mean)) > 1e-4)
        # sigma0 = 0: the noise has no effect.
        quiet = networks.noisy_mlp([6], 3, sigma0=0.0)
        quiet_params = quiet.init(KEY, OBS)
        np.testing.assert_allclose(quiet.apply(quiet_params, OBS, jax.random.key(1)),
                                   quiet.apply(quiet_params, OBS), rtol=1e-6, atol=1e-6)

    def test_shared_key_vs_one_key_per_example(self):
        vf = networks.noisy_mlp([6], 3)
        params = vf.init(KEY, OBS)
        obs = jnp.stack([OBS] * 4)
        shared = jax.jit(jax.vmap(vf.apply, in_axes=(None, 0, None)))(
            params, obs, jax.random.key(1))
        one = vf.apply(params, OBS, jax.random.key(1))
        np.testing.assert_allclose(shared, jnp.stack([one] * 4), rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(shared, jnp.stack([shared[0]] * 4))
        keys = jax.random.split(jax.random.key(1), 4)
        per_example = jax.jit(jax.vmap(vf.apply, in_axes=(None, 0, 0)))(params, obs, keys)
        for i in range(4):
            np.testing.assert_allclose(per_example[i], vf.apply(params, OBS, keys[i]), rtol=1e-6)
        assert not np.allclose(per_example[0], per_example[1])

    def test_gradients_reach_sigma_only_with_noise(self):
        vf = networks.noisy_mlp([6], 3, dueling=True, layer_norm=True)
        params = vf.init(KEY, OBS)
        noisy = jax.grad(lambda p: jnp.sum(vf.apply(p, OBS, jax.random.key(1)) ** 2))(params)
        for path, g in jax.tree_util.tree_leaves_with_path(noisy):
            assert np.any(np.asarray(g) != 0), jax.tree_util.keystr(path)
        mean = jax.grad(lambda p: jnp.sum(vf.apply(p, OBS) ** 2))(params)
        for layer in mean["torso"] + [mean["value"], mean["advantage"]]:
            np.testing.assert_array_equal(layer["w_sigma"], 0.0)
            np.testing.assert_array_equal(layer["b_sigma"], 0.0)
            assert np.any(np.asarray(layer["w_mu"]) != 0)

    def test_bad_input_raises(self):
        with pytest.raises(ValueError, match="noisy_mlp: argument `num_atoms` must be a positive"):
            networks.noisy_mlp([8], 3, num_atoms=0)
        with pytest.raises(ValueError, match="noisy_mlp: argument `sigma0` must be a number"):
            networks.noisy_mlp([8], 3, sigma0=-1.0)
        vf = networks.noisy_mlp([8], 3)
        params = vf.init(KEY, OBS)
        with pytest.raises(AssertionError, match=r"noisy_mlp.apply: argument `obs` must have "
                           r"shape \(4,\)"):
            vf.apply(params, jnp.zeros((3, 4)), jax.random.key(1))
        with pytest.raises(AssertionError, match=r"noisy_mlp.apply: argument `key` must be ONE "
                           r"PRNG key .* use jax.vmap for one key per example"):
            vf.apply(params, OBS, jax.random.split(KEY, 3))


# --------------------------------------------------------------------------------------
# IQN.
# --------------------------------------------------------------------------------------


class IQNTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_cosine_embedding_by_hand(self):
        embed = self.variant(networks.cosine_embedding, static_argnums=1)
        # i = 0, 1 at tau = 0.25: [cos 0, cos(pi / 4)].
        np.testing.assert_allclose(embed(jnp.array([0.25]), 2), [[1.0, np.sqrt(0.5)]],
                                   rtol=1e-6)
        out = embed(jnp.array([0.0, 0.5, 1.0]), 3)
        chex.assert_type(out, jnp.float32)
        np.testing.assert_allclose(out, [[1, 1, 1], [1, 0, -1], [1, -1, 1]], atol=1e-6)

    def test_cosine_embedding_bad_input(self):
        with pytest.raises(AssertionError, match="cosine_embedding: argument `taus` must have "
                           "rank 1"):
            networks.cosine_embedding(jnp.float32(0.5), 4)
        with pytest.raises(AssertionError, match="argument `taus` must have a float dtype"):
            networks.cosine_embedding(jnp.array([0, 1]), 4)
        with pytest.raises(ValueError, match="argument `embedding_dim` must be a positive int"):
            networks.cosine_embedding(jnp.array([0.5]), 0)

    def test_param_shapes(self):
        params = networks.iqn_mlp([8], 3, embedding_dim=5, layer_norm=True,
                                  head_hidden_sizes=(6,)).init(KEY, OBS)
        ln = lambda d: {"scale": jnp.zeros(d), "offset": jnp.zeros(d)}
        chex.assert_trees_all_equal_shapes(params, {
            "torso": [{"w": jnp.zeros((4, 8)), "b": jnp.zeros(8), **ln(8)}],
            "embedding": {"w": jnp.zeros((5, 8)), "b": jnp.zeros(8)},
            "head": [{"w": jnp.zeros((8, 6)), "b": jnp.zeros(6), **ln(6)},
                     {"w": jnp.zeros((6, 3)), "b": jnp.zeros(3)}]})
        bare = networks.iqn_mlp([], 2, embedding_dim=3).init(KEY, OBS)
        chex.assert_shape((bare["embedding"]["w"], bare["head"][0]["w"]), ((3, 4), (4, 2)))

    @chex.variants(with_jit=True, without_jit=True)
    def test_matches_numpy_forward(self):
        taus = jnp.array([0.1, 0.5, 0.9, 0.25, 0.75])
        for ln, head_hidden in ((False, ()), (True, (6,))):
            vf = networks.iqn_mlp([8], 3, embedding_dim=4, layer_norm=ln,
                                  head_hidden_sizes=head_hidden)
            params = _perturbed(vf.init(KEY, OBS))
            out = self.variant(vf.apply)(params, OBS, taus)
            chex.assert_shape(out, (5, 3))
            chex.assert_type(out, jnp.float32)
            psi = _np_hidden(params["torso"][0], OBS, ln)                       # [H]
            i = np.arange(4)
            cos = np.cos(np.pi * np.asarray(taus, np.float64)[:, None] * i)     # [N, E]
            phi = np.maximum(_np_linear(params["embedding"], cos), 0.0)         # [N, H]
            x = psi[None] * phi
            for layer in params["head"][:-1]:
                x = _np_hidden(layer, x, ln)
            np.testing.assert_allclose(out, _np_linear(params["head"][-1], x), rtol=1e-5,
                                       atol=1e-5)

    def test_quantiles_depend_on_tau(self):
        vf = networks.iqn_mlp([16], 3, embedding_dim=8)
        params = _perturbed(vf.init(KEY, OBS), scale=0.1)
        out = np.asarray(vf.apply(params, OBS, jnp.array([0.1, 0.1, 0.5, 0.9])))
        np.testing.assert_array_equal(out[0], out[1])
        assert np.all(np.abs(out[0] - out[2]) > 1e-4) and np.all(np.abs(out[2] - out[3]) > 1e-4)

    def test_gradient_reaches_every_parameter(self):
        vf = networks.iqn_mlp([8], 3, embedding_dim=4, layer_norm=True, head_hidden_sizes=(6,))
        params = _perturbed(vf.init(KEY, OBS), scale=0.1)
        taus = jax.random.uniform(jax.random.key(1), (8,))
        g = jax.grad(lambda p: jnp.sum(vf.apply(p, OBS, taus) ** 2))(params)
        for path, leaf in jax.tree_util.tree_leaves_with_path(g):
            assert np.all(np.isfinite(leaf)), jax.tree_util.keystr(path)
            assert np.any(np.asarray(leaf) != 0), jax.tree_util.keystr(path)

    def test_bad_input_raises(self):
        with pytest.raises(ValueError, match="iqn_mlp: argument `embedding_dim` must be a"):
            networks.iqn_mlp([8], 3, embedding_dim=0)
        with pytest.raises(ValueError, match=r"iqn_mlp: argument `head_hidden_sizes\[0\]`"):
            networks.iqn_mlp([8], 3, head_hidden_sizes=(-2,))
        with pytest.raises(ValueError, match="iqn_mlp: argument `num_actions` must be a"):
            networks.iqn_mlp([8], 0)
        vf = networks.iqn_mlp([8], 3, embedding_dim=4)
        params = vf.init(KEY, OBS)
        with pytest.raises(AssertionError, match="iqn_mlp.apply: argument `taus` must have rank 1"):
            vf.apply(params, OBS, jnp.zeros((2, 3)))
        with pytest.raises(AssertionError, match="iqn_mlp.apply: argument `taus` must have rank 1"):
            vf.apply(params, OBS, jnp.float32(0.5))
        with pytest.raises(AssertionError, match=r"iqn_mlp.apply: argument `obs` must have shape "
                           r"\(4,\) \(ONE observation; use jax.vmap for a batch\), got \(2, 4\)"):
            vf.apply(params, jnp.zeros((2, 4)), jnp.array([0.5]))


# --------------------------------------------------------------------------------------
# All networks: vmap over a batch, td_loss, per-example gradients (generic vmap path).
# --------------------------------------------------------------------------------------

TAUS = jnp.array([0.2, 0.5, 0.8])


def _bound(kind):
    """(ValueFn with apply(params, obs), params) for every network, extra arguments bound."""
    if kind == "dueling":
        vf = networks.dueling_mlp([6], 3, layer_norm=True)
    elif kind == "dueling_atoms":
        vf = networks.dueling_mlp([6], 3, num_atoms=4)
    elif kind == "noisy":
        net = networks.noisy_mlp([6], 3, dueling=True)
        vf = values.ValueFn(net.init, functools.partial(net.apply, key=jax.random.key(7)))
    elif kind == "noisy_atoms":
        net = networks.noisy_mlp([6], 3, num_atoms=4, layer_norm=True)
        vf = values.ValueFn(net.init, functools.partial(net.apply, key=jax.random.key(7)))
    elif kind == "iqn":
        net = networks.iqn_mlp([6], 3, embedding_dim=4, head_hidden_sizes=(5,))
        vf = values.ValueFn(net.init, functools.partial(net.apply, taus=TAUS))
    else:  # "mlp_atoms"
        vf = values.mlp([6], 3, num_atoms=4, layer_norm=True)
    return vf, _perturbed(vf.init(KEY, OBS), scale=0.1)


def _quantile_rule():
    """A QR-DQN-style rule on [A, K] quantiles (written here, outside tdkit)."""

    def fn(q_tm1, q_t, _, t, stop):
        k = q_tm1.shape[-1]
        tau = (jnp.arange(k) + 0.5) / k
        target = tdkit.td.maybe_stop_gradient(
            t.r_t + t.discount_t * q_t[jnp.argmax(jnp.mean(q_t, -1))], stop)
        u = target[None, :] - q_tm1[t.a_tm1][:, None]
        loss = jnp.sum(jnp.mean(jnp.abs(tau[:, None] - (u < 0)) * losses.huber_loss(u), 1))
        return loss, loss

    return losses.TDRule(fn, returns_loss=True, value_ndim=2, name="quantile")


ALL_KINDS = ("dueling", "dueling_atoms", "noisy", "noisy_atoms", "iqn", "mlp_atoms")


class BatchAndLossTest(chex.TestCase):

    def test_jit_vmap_over_observations(self):
        obs = jnp.asarray(np.random.default_rng(0).standard_normal((5, 4)), jnp.float32)
        for kind in ALL_KINDS:
            vf, params = _bound(kind)
            batched = jax.jit(jax.vmap(vf.apply, in_axes=(None, 0)))(params, obs)
            single = jnp.stack([vf.apply(params, o) for o in obs])
            assert batched.shape == (5,) + single.shape[1:], kind
            np.testing.assert_allclose(batched, single, rtol=1e-5, atol=1e-5, err_msg=kind)
        # IQN with taus batched too: [B, N, A].
        net = networks.iqn_mlp([6], 3, embedding_dim=4)
        params = net.init(KEY, OBS)
        taus = jax.random.uniform(KEY, (5, 7))
        chex.assert_shape(jax.jit(jax.vmap(net.apply, in_axes=(None, 0, 0)))(params, obs, taus),
                          (5, 7, 3))

    def test_q_learning_td_loss_by_hand(self):
        for kind in ("dueling", "noisy"):
            vf, params = _bound(kind)
            target = _perturbed(params, seed=1, scale=0.1)
            batch = _batch(vf, params)
            loss = losses.td_loss(vf, "q_learning")
            assert loss.structure is None
            out = jax.jit(jax.vmap(loss, in_axes=(None, None, 0)))(params, target, batch)
            for i in range(len(batch.r_t)):
                t = _index(batch, i)
                q_tm1 = np.asarray(vf.apply(params, t.obs_tm1), np.float64)
                q_t = np.asarray(vf.apply(target, t.obs_t), np.float64)
                np.testing.assert_allclose(out[i], _q_learning_oracle(q_tm1, q_t, t), rtol=1e-4,
                                           atol=1e-6, err_msg=kind)

    def test_noisy_loss_depends_on_the_bound_key(self):
        net = networks.noisy_mlp([6], 3)
        params = net.init(KEY, OBS)
        batch = _index(_batch(None, params), 0)
        loss_at = lambda key: losses.td_loss(
            values.ValueFn(net.init, functools.partial(net.apply, key=key)))(params, params, batch)
        assert loss_at(jax.random.key(1)) == loss_at(jax.random.key(1))
        assert loss_at(jax.random.key(1)) != loss_at(jax.random.key(2))

    def test_per_example_grads_generic_path(self):
        for kind in ALL_KINDS:
            vf, params = _bound(kind)
            target = _perturbed(params, seed=1, scale=0.1)
            batch = _batch(vf, params)
            rule = "q_learning" if kind in ("dueling", "noisy") else _quantile_rule()
            loss = losses.td_loss(vf, rule)
            fn = jax.jit(grads.per_example_grads(loss, (None, None, 0)))
            per_example = fn(params, target, batch)
            chex.assert_trees_all_close(per_example, _loop_grads(loss, params, target, batch),
                                        rtol=1e-4, atol=1e-6)
            assert jax.tree.leaves(per_example)[0].shape[0] == len(batch.r_t)

    def test_mlp_atoms_keeps_the_layerwise_path(self):
        vf, params = _bound("mlp_atoms")
        target = _perturbed(params, seed=1, scale=0.1)
        batch = _batch(vf, params)
        loss = losses.td_loss(vf, _quantile_rule())
        assert loss.structure is not None
        oracle = _loop_grads(loss, params, target, batch)
        layerwise = grads.per_example_grads(loss, (None, None, 0), structure=loss.structure,
                                            method="layerwise")
        chex.assert_trees_all_close(jax.jit(layerwise)(params, target, batch), oracle,
                                    rtol=1e-4, atol=1e-6)
        norms = grads.per_example_grad_norms(loss, (None, None, 0), structure=loss.structure,
                                             method="layerwise")
        expected = np.sqrt(sum(np.sum(np.asarray(g, np.float64).reshape(len(batch.r_t), -1) ** 2,
                                      axis=1) for g in jax.tree.leaves(oracle)))
        np.testing.assert_allclose(jax.jit(norms)(params, target, batch), expected, rtol=1e-4)
