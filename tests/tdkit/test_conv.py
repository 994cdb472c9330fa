"""tdkit.values.conv_torso and the `torso` argument of every value network.

Oracles: a plain NumPy loop convolution (float64), a conv worked out by hand on a 4x4 image,
NumPy forward passes of the MLP heads written from the papers' equations, and a Python loop
of single-example gradients for `tdkit.grads`.
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
MINATAR_STRIDES = (1,)
NATURE_STRIDES = (4, 2, 1)


# --------------------------------------------------------------------------------------
# NumPy oracles.
# --------------------------------------------------------------------------------------


def _np_conv(x, w, b, stride):
    """VALID cross-correlation of ONE image `[H, W, C_in]` with `w [kh, kw, C_in, C_out]`."""
    x, w, b = (np.asarray(a, np.float64) for a in (x, w, b))
    h, wd, _ = x.shape
    kh, kw, _, c_out = w.shape
    out = np.zeros(((h - kh) // stride + 1, (wd - kw) // stride + 1, c_out))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            patch = x[i * stride:i * stride + kh, j * stride:j * stride + kw, :]
            for c in range(c_out):
                out[i, j, c] = np.sum(patch * w[:, :, :, c]) + b[c]
    return out


def _np_layer_norm(z, layer, eps=1e-5):
    """LayerNorm over the last axis (channels at each position, or a dense layer's units)."""
    mean, var = z.mean(-1, keepdims=True), z.var(-1, keepdims=True)
    return (z - mean) / np.sqrt(var + eps) * np.asarray(layer["scale"]) + np.asarray(
        layer["offset"])


def _np_torso(params, obs, strides, layer_norm=False, activation=lambda z: np.maximum(z, 0)):
    x = np.asarray(obs, np.float64)
    if np.asarray(obs).dtype == np.uint8:
        x = x / 255.0
    for layer, stride in zip(params, strides, strict=True):
        z = _np_conv(x, layer["w"], layer["b"], stride)
        x = activation(_np_layer_norm(z, layer) if layer_norm else z)
    return x.reshape(-1)


def _np_linear(layer, x, w="w", b="b"):
    return np.asarray(x, np.float64) @ np.asarray(layer[w], np.float64) + np.asarray(layer[b])


def _np_hidden(layer, x, layer_norm, w="w", b="b"):
    z = _np_linear(layer, x, w, b)
    return np.maximum(_np_layer_norm(z, layer) if layer_norm else z, 0.0)


def _perturbed(params, seed=0, scale=0.3):
    """Non-trivial biases, scales and offsets so that every parameter matters."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda p: jnp.asarray(np.asarray(p) + scale * rng.standard_normal(p.shape), jnp.float32),
        params)


def _images(n, shape=(6, 5, 3), seed=0):
    return jnp.asarray(np.random.default_rng(seed).uniform(0, 1, (n,) + shape), jnp.float32)


# --------------------------------------------------------------------------------------
# The two ways of computing a convolution (`conv="xla" | "patches"`).
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kernel,stride,shape", [
    (3, 1, (7, 9, 4)),     # MinAtar's layer: kh * kw slices
    (8, 4, (43, 46, 3)),   # Nature's first layer: space to depth; rows/cols beyond the
    (4, 2, (11, 10, 5)),   # last window are cropped (43 -> 40, 46 -> 44; 11 -> 10)
    (3, 2, (9, 8, 2)),     # a stride that does not divide the kernel: strided slices
])
def test_patches_conv_matches_a_numpy_loop(kernel, stride, shape):
    rng = np.random.default_rng(kernel + stride)
    x = rng.standard_normal((2,) + shape).astype(np.float32)
    w = rng.standard_normal((kernel, kernel, shape[2], 5)).astype(np.float32)
    out = jax.jit(values._patches_conv, static_argnums=2)(jnp.asarray(x), jnp.asarray(w), stride)
    for n in range(2):
        np.testing.assert_allclose(out[n], _np_conv(x[n], w, np.zeros(5), stride), rtol=1e-4,
                                   atol=1e-4)


@pytest.mark.parametrize("kind,shape", [("minatar", (10, 10, 4)), ("nature", (44, 52, 4))])
def test_patches_and_xla_convolutions_agree_with_gradients_in_cond_and_scan(kind, shape):
    """Values and parameter gradients of a batched loss agree between the two ways, at the
    top level and inside `lax.cond` and `lax.scan` (where training steps run)."""
    xla = values.mlp((6,), 3, torso=values.conv_torso(kind, layer_norm=True, conv="xla"))
    patches = values.mlp((6,), 3, torso=values.conv_torso(kind, layer_norm=True,
                                                          conv="patches"))
    images = _images(5, shape, seed=7)
    params = _perturbed(xla.init(KEY, images[0]), scale=0.1)

    def loss(net):
        return lambda p, x: jnp.sum(jnp.tanh(jax.vmap(net.apply, (None, 0))(p, x)))

    def in_cond(f):
        return lambda p, x: jax.lax.cond(True, f, lambda p, x: jax.tree.map(jnp.zeros_like, p),
                                         p, x)

    def in_scan(f):
        return lambda p, x: jax.lax.scan(lambda c, _: (c, f(p, x)), 0.0, None, length=1)[1]

    np.testing.assert_allclose(jax.jit(loss(patches))(params, images),
                               jax.jit(loss(xla))(params, images), rtol=1e-5, atol=1e-5)
    expected = jax.jit(jax.grad(loss(xla)))(params, images)
    for wrap in (lambda f: f, in_cond):
        chex.assert_trees_all_close(jax.jit(wrap(jax.grad(loss(patches))))(params, images),
                                    expected, rtol=1e-4, atol=1e-5)
    got = jax.jit(in_scan(jax.grad(loss(patches))))(params, images)
    chex.assert_trees_all_close(jax.tree.map(lambda g: g[0], got), expected, rtol=1e-4,
                                atol=1e-5)


def test_auto_conv_is_patches_on_the_cpu(monkeypatch):
    calls = []
    real = values._patches_conv
    monkeypatch.setattr(values, "_patches_conv", lambda *a: calls.append(1) or real(*a))
    torso = values.conv_torso("minatar")
    image = _images(1, (10, 10, 4))[0]
    torso.apply(torso.init(KEY, image)[0], image)
    assert calls == ([1] if jax.default_backend() == "cpu" else [])
    calls.clear()
    values.conv_torso("minatar", conv="xla").apply(torso.init(KEY, image)[0], image)
    assert calls == []
    with pytest.raises(ValueError, match=r"conv_torso: argument `conv` must be one of "
                       r"\('auto', 'patches', 'xla'\), got 'fft'"):
        values.conv_torso("minatar", conv="fft")


# --------------------------------------------------------------------------------------
# The torso.
# --------------------------------------------------------------------------------------


class ConvTorsoTest(chex.TestCase):

    def test_minatar_shapes(self):
        torso = values.conv_torso("minatar")
        params, num_features = torso.init(KEY, jnp.zeros((10, 10, 4)))
        assert num_features == 8 * 8 * 16 == 1024
        chex.assert_trees_all_equal_shapes(
            params, [{"w": jnp.zeros((3, 3, 4, 16)), "b": jnp.zeros(16)}])
        chex.assert_type(jax.tree.leaves(params), jnp.float32)
        out = torso.apply(params, jnp.ones((10, 10, 4)))
        chex.assert_shape(out, (1024,))
        chex.assert_type(out, jnp.float32)

    def test_nature_shapes(self):
        torso = values.conv_torso("nature", layer_norm=True)
        params, num_features = torso.init(KEY, jnp.zeros((84, 84, 4), jnp.uint8))
        assert num_features == 7 * 7 * 64 == 3136
        ln = lambda c: {"scale": jnp.zeros(c), "offset": jnp.zeros(c)}
        chex.assert_trees_all_equal_shapes(params, [
            {"w": jnp.zeros((8, 8, 4, 32)), "b": jnp.zeros(32), **ln(32)},
            {"w": jnp.zeros((4, 4, 32, 64)), "b": jnp.zeros(64), **ln(64)},
            {"w": jnp.zeros((3, 3, 64, 64)), "b": jnp.zeros(64), **ln(64)}])
        batch = jnp.zeros((2, 84, 84, 4), jnp.uint8)
        chex.assert_shape(jax.jit(jax.vmap(torso.apply, in_axes=(None, 0)))(params, batch),
                          (2, 3136))

    def test_channels_override(self):
        _, num_features = values.conv_torso("minatar", channels=(8,)).init(
            KEY, jnp.zeros((10, 10, 4)))
        assert num_features == 8 * 8 * 8
        params, num_features = values.conv_torso("nature", channels=(4, 6, 5)).init(
            KEY, jnp.zeros((84, 84, 4)))
        assert num_features == 7 * 7 * 5
        assert [p["w"].shape for p in params] == [(8, 8, 4, 4), (4, 4, 4, 6), (3, 3, 6, 5)]

    @chex.variants(with_jit=True, without_jit=True)
    def test_conv_by_hand(self):
        # x[i, j] = 4 i + j on a 4x4x1 image. Filter 0: centre - 0.5 top-left, bias -6:
        # out(i, j) = x[i+1, j+1] - 0.5 x[i, j] - 6 = 2 i + 0.5 j - 1, for i, j in {0, 1}:
        # [[-1, -0.5], [1, 1.5]] -> relu -> [[0, 0], [1, 1.5]].
        # Filter 1: the centre, bias 0: out(i, j) = x[i+1, j+1] = [[5, 6], [9, 10]].
        torso = values.conv_torso("minatar", channels=(2,))
        image = jnp.arange(16, dtype=jnp.float32).reshape(4, 4, 1)
        params, num_features = torso.init(KEY, image)
        assert num_features == 2 * 2 * 2
        w = np.zeros((3, 3, 1, 2), np.float32)
        w[1, 1, 0, 0], w[0, 0, 0, 0], w[1, 1, 0, 1] = 1.0, -0.5, 1.0
        params = [{"w": jnp.asarray(w), "b": jnp.array([-6.0, 0.0])}]
        out = self.variant(torso.apply)(params, image)
        # Flattened in (H, W, C) order: (0,0,c0), (0,0,c1), (0,1,c0), (0,1,c1), (1,0,c0), ...
        np.testing.assert_allclose(out, [0.0, 5.0, 0.0, 6.0, 1.0, 9.0, 1.5, 10.0], atol=1e-6)
        np.testing.assert_allclose(out, _np_torso(params, image, MINATAR_STRIDES), atol=1e-6)

    def test_matches_numpy_loop_convolution(self):
        # Nature's three strided layers (few filters) on a non-square image, random params.
        torso = values.conv_torso("nature", channels=(3, 4, 2))
        image = _images(1, (40, 44, 3), seed=1)[0]
        params = _perturbed(torso.init(KEY, image)[0], scale=0.1)
        out = jax.jit(torso.apply)(params, image)
        expected = _np_torso(params, image, NATURE_STRIDES)
        chex.assert_shape(out, expected.shape)  # [40, 44] -> [9, 10] -> [3, 4] -> [1, 2] x 2.
        assert expected.shape == (1 * 2 * 2,)
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
        minatar = values.conv_torso("minatar")
        image = _images(1, (7, 9, 4), seed=2)[0]
        params = _perturbed(minatar.init(KEY, image)[0])
        np.testing.assert_allclose(jax.jit(minatar.apply)(params, image),
                                   _np_torso(params, image, MINATAR_STRIDES), rtol=1e-5,
                                   atol=1e-5)

    def test_layer_norm_over_channels_at_each_position(self):
        image = _images(1, (6, 7, 3), seed=3)[0]
        # With the identity as activation, the features ARE the normalised conv output.
        torso = values.conv_torso("minatar", layer_norm=True, activation=lambda z: z)
        params = _perturbed(torso.init(KEY, image)[0], seed=4)
        params[0]["scale"] = jnp.ones(16)
        params[0]["offset"] = jnp.zeros(16)
        maps = np.asarray(torso.apply(params, image), np.float64).reshape(4, 5, 16)
        np.testing.assert_allclose(maps.mean(-1), 0.0, atol=1e-5)     # every (h, w)
        np.testing.assert_allclose(maps.var(-1), 1.0, rtol=1e-3)      # (eps = 1e-5)
        # Not over (H, W): the per-channel means over positions are not all zero.
        assert np.max(np.abs(maps.mean((0, 1)))) > 0.05
        # Learnt scale and offset per channel, then ReLU: the NumPy oracle.
        torso = values.conv_torso("minatar", layer_norm=True)
        params = _perturbed(torso.init(KEY, image)[0], seed=5)
        np.testing.assert_allclose(torso.apply(params, image),
                                   _np_torso(params, image, MINATAR_STRIDES, layer_norm=True),
                                   rtol=1e-4, atol=1e-5)

    def test_he_normal_init(self):
        # Variance scaling with fan_in = kh * kw * C_in: std sqrt(2 / 256) for 8x8x4.
        params, _ = values.conv_torso("nature").init(KEY, jnp.zeros((84, 84, 4)))
        for layer, fan_in in zip(params, (8 * 8 * 4, 4 * 4 * 32, 3 * 3 * 64), strict=True):
            np.testing.assert_allclose(np.std(layer["w"]), np.sqrt(2.0 / fan_in), rtol=0.05)
            np.testing.assert_array_equal(layer["b"], 0.0)
        w_init = jax.nn.initializers.zeros
        params, _ = values.conv_torso("minatar", w_init=w_init).init(KEY, jnp.zeros((5, 5, 2)))
        np.testing.assert_array_equal(params[0]["w"], 0.0)

    def test_uint8_is_scaled_and_bool_is_zero_one(self):
        torso = values.conv_torso("minatar")
        pixels = jnp.asarray(np.random.default_rng(6).integers(0, 256, (5, 6, 2)), jnp.uint8)
        params = _perturbed(torso.init(KEY, pixels)[0], seed=7)
        out = jax.jit(torso.apply)(params, pixels)
        np.testing.assert_allclose(out, torso.apply(params, pixels.astype(jnp.float32) / 255.0),
                                   rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(out, _np_torso(params, pixels, MINATAR_STRIDES), rtol=1e-5,
                                   atol=1e-6)
        assert np.max(np.abs(out)) < 50.0  # Not the raw 0..255 pixels.
        grid = pixels > 127
        np.testing.assert_allclose(torso.apply(params, grid),
                                   torso.apply(params, grid.astype(jnp.float32)), atol=1e-7)

    def test_bad_input_raises(self):
        with pytest.raises(ValueError, match="conv_torso: argument `kind` must be one of"):
            values.conv_torso("impala")
        with pytest.raises(ValueError, match="conv_torso: argument `channels` must have one "
                           "entry per conv layer of 'nature' \\(3\\)"):
            values.conv_torso("nature", channels=(32, 64))
        with pytest.raises(ValueError, match=r"conv_torso: argument `channels\[0\]` must be a"):
            values.conv_torso("minatar", channels=(0,))
        with pytest.raises(ValueError, match="conv_torso: argument `layer_norm_eps` must be > 0"):
            values.conv_torso(layer_norm_eps=0.0)
        torso = values.conv_torso("minatar")
        with pytest.raises(AssertionError, match=r"conv_torso.init: argument `example_obs` must "
                           r"have rank 3, an image \[H, W, C\]"):
            torso.init(KEY, jnp.zeros(100))
        with pytest.raises(AssertionError, match="conv_torso.init: argument `example_obs` of "
                           r"shape \(2, 9, 4\) is too small for the 'minatar' torso"):
            torso.init(KEY, jnp.zeros((2, 9, 4)))
        params, _ = torso.init(KEY, jnp.zeros((10, 10, 4)))
        with pytest.raises(AssertionError, match=r"conv_torso.apply: argument `obs` must have "
                           r"rank 3, an image \[H, W, C\] \(ONE observation; use jax.vmap for a "
                           r"batch\), got shape \(2, 10, 10, 4\)"):
            torso.apply(params, jnp.zeros((2, 10, 10, 4)))
        with pytest.raises(AssertionError, match="conv_torso.apply: argument `obs` must have 4 "
                           "channels"):
            torso.apply(params, jnp.zeros((10, 10, 3)))
        with pytest.raises(AssertionError, match="conv_torso.apply: argument `obs` must have a "
                           "float, uint8 or bool dtype, got int32"):
            torso.apply(params, jnp.zeros((10, 10, 4), jnp.int32))
        nature = values.conv_torso("nature")
        with pytest.raises(AssertionError, match=r"conv layer 1 \(4x4, stride 2, VALID\) gets a "
                           r"2x2 input"):
            nature.init(KEY, jnp.zeros((12, 12, 4)))


# --------------------------------------------------------------------------------------
# Every value network with a torso.
# --------------------------------------------------------------------------------------

IMAGE_SHAPE = (6, 5, 3)           # minatar torso: [4, 3, 16], F = 192
TAUS = jnp.array([0.1, 0.5, 0.9])


def _torso(layer_norm=False):
    return values.conv_torso("minatar", layer_norm=layer_norm)


def _network(kind):
    """(ValueFn with apply(params, obs), output shape) for every network with a torso."""
    if kind == "mlp":
        return values.mlp([8], 3, layer_norm=True, torso=_torso(True)), (3,)
    if kind == "mlp_value":
        return values.mlp([8], torso=_torso()), ()
    if kind == "mlp_atoms":
        return values.mlp([8], 3, num_atoms=4, torso=_torso()), (3, 4)
    if kind == "dueling":
        return networks.dueling_mlp([8], 3, layer_norm=True, torso=_torso()), (3,)
    if kind == "dueling_atoms":
        return networks.dueling_mlp([], 3, num_atoms=4, torso=_torso(True)), (3, 4)
    if kind == "noisy":
        net = networks.noisy_mlp([8], 3, dueling=True, torso=_torso())
        return values.ValueFn(net.init, functools.partial(net.apply, key=jax.random.key(7))), (3,)
    if kind == "noisy_atoms":
        net = networks.noisy_mlp([8], 3, num_atoms=4, layer_norm=True, torso=_torso())
        return values.ValueFn(net.init, functools.partial(net.apply, key=jax.random.key(7))), (
            3, 4)
    # "iqn"
    net = networks.iqn_mlp([8], 3, embedding_dim=4, head_hidden_sizes=(5,), torso=_torso())
    return values.ValueFn(net.init, functools.partial(net.apply, taus=TAUS)), (3, 3)


ALL_KINDS = ("mlp", "mlp_value", "mlp_atoms", "dueling", "dueling_atoms", "noisy",
             "noisy_atoms", "iqn")


def _params(kind, seed=0):
    vf, _ = _network(kind)
    return _perturbed(vf.init(KEY, jnp.zeros(IMAGE_SHAPE)), seed=seed, scale=0.1)


class NetworksWithTorsoTest(chex.TestCase):

    def test_jit_and_vmap_give_the_output_shapes(self):
        obs = _images(4)
        for kind in ALL_KINDS:
            vf, shape = _network(kind)
            params = _params(kind)
            assert "encoder" in params, kind
            batched = jax.jit(jax.vmap(vf.apply, in_axes=(None, 0)))(params, obs)
            chex.assert_shape(batched, (4,) + shape)
            chex.assert_type(batched, jnp.float32)
            single = jnp.stack([jax.jit(vf.apply)(params, o) for o in obs])
            np.testing.assert_allclose(batched, single, rtol=1e-5, atol=1e-5, err_msg=kind)

    def test_mlp_matches_numpy_forward(self):
        vf, _ = _network("mlp")
        params, obs = _params("mlp"), _images(1)[0]
        chex.assert_trees_all_equal_shapes(params["layers"], [
            {"w": jnp.zeros((192, 8)), "b": jnp.zeros(8), "scale": jnp.zeros(8),
             "offset": jnp.zeros(8)}, {"w": jnp.zeros((8, 3)), "b": jnp.zeros(3)}])
        x = _np_torso(params["encoder"], obs, MINATAR_STRIDES, layer_norm=True)
        expected = _np_linear(params["layers"][1], _np_hidden(params["layers"][0], x, True))
        np.testing.assert_allclose(vf.apply(params, obs), expected, rtol=1e-4, atol=1e-5)

    def test_dueling_matches_numpy_forward(self):
        vf, _ = _network("dueling_atoms")  # No hidden layers: the heads read the features.
        params, obs = _params("dueling_atoms"), _images(1)[0]
        assert params["torso"] == []
        x = _np_torso(params["encoder"], obs, MINATAR_STRIDES, layer_norm=True)
        v = _np_linear(params["value"], x).reshape(1, 4)
        a = _np_linear(params["advantage"], x).reshape(3, 4)
        np.testing.assert_allclose(vf.apply(params, obs), v + a - a.mean(0, keepdims=True),
                                   rtol=1e-4, atol=1e-5)

    def test_noisy_torso_is_not_noisy(self):
        net = networks.noisy_mlp([8], 3, torso=_torso())
        params = net.init(KEY, jnp.zeros(IMAGE_SHAPE))
        assert set(params["encoder"][0]) == {"w", "b"}
        assert set(params["torso"][0]) == {"w_mu", "w_sigma", "b_mu", "b_sigma"}
        params, obs = _perturbed(params, scale=0.1), _images(1)[0]
        # key=None: the mean network on the torso's features.
        x = _np_torso(params["encoder"], obs, MINATAR_STRIDES)
        h = _np_hidden(params["torso"][0], x, False, "w_mu", "b_mu")
        expected = _np_linear(params["head"], h, "w_mu", "b_mu")
        np.testing.assert_allclose(net.apply(params, obs), expected, rtol=1e-4, atol=1e-5)
        q1, q2 = (net.apply(params, obs, jax.random.key(k)) for k in (1, 2))
        assert not np.allclose(q1, q2)

    def test_iqn_matches_numpy_forward(self):
        net = networks.iqn_mlp([8], 3, embedding_dim=4, head_hidden_sizes=(5,), torso=_torso())
        params = _perturbed(net.init(KEY, jnp.zeros(IMAGE_SHAPE)), scale=0.1)
        obs = _images(1)[0]
        psi = _np_hidden(params["torso"][0],
                         _np_torso(params["encoder"], obs, MINATAR_STRIDES), False)
        cos = np.cos(np.pi * np.asarray(TAUS, np.float64)[:, None] * np.arange(4)[None, :])
        phi = np.maximum(_np_linear(params["embedding"], cos), 0.0)
        x = _np_hidden(params["head"][0], psi[None, :] * phi, False)
        expected = _np_linear(params["head"][1], x)
        out = jax.jit(net.apply)(params, obs, TAUS)
        chex.assert_shape(out, (3, 3))
        np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)

    def test_nature_torso_with_uint8_frames(self):
        vf = networks.dueling_mlp([16], 4, torso=values.conv_torso("nature", channels=(4, 4, 4)))
        frames = jnp.asarray(np.random.default_rng(8).integers(0, 256, (2, 84, 84, 4)), jnp.uint8)
        params = vf.init(KEY, frames[0])
        assert params["torso"][0]["w"].shape == (7 * 7 * 4, 16)
        q = jax.jit(jax.vmap(vf.apply, in_axes=(None, 0)))(params, frames)
        chex.assert_shape(q, (2, 4))
        np.testing.assert_allclose(
            q, jax.vmap(vf.apply, in_axes=(None, 0))(params, frames.astype(jnp.float32) / 255),
            rtol=1e-5, atol=1e-6)

    def test_gradient_reaches_the_torso(self):
        obs = _images(1)[0]
        for kind in ALL_KINDS:
            vf, _ = _network(kind)
            params = _params(kind)
            g = jax.grad(lambda p, f=vf.apply: jnp.sum(f(p, obs) ** 2))(params)
            for leaf in jax.tree.leaves(g["encoder"]):
                assert np.any(np.asarray(leaf) != 0), kind

    def test_without_torso_nothing_changes(self):
        # Params of the flat networks keep their layout and mlp keeps its fast path.
        assert isinstance(values.mlp([4], 2).init(KEY, jnp.zeros(3)), list)
        assert values.per_example_structure(values.mlp([4], 2).apply) is not None
        assert values.per_example_structure(_network("mlp")[0].apply) is None
        for net in (networks.dueling_mlp([4], 2), networks.noisy_mlp([4], 2),
                    networks.iqn_mlp([4], 2, embedding_dim=3)):
            assert "encoder" not in net.init(KEY, jnp.zeros(3))

    def test_bad_observation_raises(self):
        vf, _ = _network("mlp")
        params = vf.init(KEY, jnp.zeros(IMAGE_SHAPE))
        with pytest.raises(AssertionError, match=r"conv_torso.apply: argument `obs` must have "
                           r"rank 3, an image \[H, W, C\] \(ONE observation; use jax.vmap for a "
                           r"batch\)"):
            vf.apply(params, _images(2))
        with pytest.raises(AssertionError, match=r"conv_torso.apply: argument `obs` must have "
                           r"rank 3"):
            vf.apply(params, jnp.zeros(90))
        with pytest.raises(AssertionError, match=r"mlp.apply: argument `obs` of shape \(7, 5, 3\) "
                           r"gives torso features of shape \(240,\), but the params expect "
                           r"\(192,\)"):
            vf.apply(params, jnp.zeros((7, 5, 3)))
        with pytest.raises(AssertionError, match=r"conv_torso.init: argument `example_obs` must "
                           r"have rank 3"):
            vf.init(KEY, jnp.zeros(90))
        for kind, fn in (("dueling", "dueling_mlp"), ("noisy", "noisy_mlp"), ("iqn", "iqn_mlp")):
            vf, _ = _network(kind)
            params = vf.init(KEY, jnp.zeros(IMAGE_SHAPE))
            with pytest.raises(AssertionError, match=r"conv_torso.apply: argument `obs` must "
                               r"have rank 3"):
                vf.apply(params, _images(2))
            with pytest.raises(AssertionError, match=rf"{fn}.apply: argument `obs` of shape "
                               r"\(6, 6, 3\) gives torso features"):
                vf.apply(params, jnp.zeros((6, 6, 3)))
        for make in (lambda t: values.mlp([4], torso=t),
                     lambda t: networks.dueling_mlp([4], 2, torso=t),
                     lambda t: networks.noisy_mlp([4], 2, torso=t),
                     lambda t: networks.iqn_mlp([4], 2, torso=t)):
            with pytest.raises(TypeError, match="argument `torso` must be a tdkit.values.Torso"):
                make(lambda obs: obs)


# --------------------------------------------------------------------------------------
# Per-example gradients through tdkit.grads (generic vmap path).
# --------------------------------------------------------------------------------------


def _batch(batch_size=5, num_actions=3, seed=0):
    rng = np.random.default_rng(seed)
    return tdkit.Transition(
        obs_tm1=_images(batch_size, seed=seed + 1),
        a_tm1=jnp.asarray(rng.integers(0, num_actions, batch_size), jnp.int32),
        r_t=jnp.asarray(rng.standard_normal(batch_size), jnp.float32),
        discount_t=jnp.full((batch_size,), 0.9, jnp.float32),
        obs_t=_images(batch_size, seed=seed + 2))


def _index(tree, i):
    return jax.tree.map(lambda x: x[i], tree)


def _loop_grads(loss, params, target, batch):
    """Oracle: one jax.grad per transition in a Python loop, stacked."""
    grad = jax.jit(jax.grad(loss))
    per = [grad(params, target, _index(batch, i)) for i in range(len(batch.r_t))]
    return jax.tree.map(lambda *g: jnp.stack(g), *per)


class PerExampleGradsTest(chex.TestCase):

    def test_mlp_and_dueling_with_torso(self):
        batch = _batch()
        for kind in ("mlp", "dueling"):
            vf, _ = _network(kind)
            params, target = _params(kind, seed=0), _params(kind, seed=1)
            loss = losses.td_loss(vf, "q_learning")
            assert loss.structure is None, kind  # No fast path for conv layers.
            oracle = _loop_grads(loss, params, target, batch)
            per_example = jax.jit(grads.per_example_grads(loss, (None, None, 0)))(
                params, target, batch)
            chex.assert_trees_all_close(per_example, oracle, rtol=1e-4, atol=1e-6)
            chunked = jax.jit(grads.per_example_grads(loss, (None, None, 0), chunk_size=2))(
                params, target, batch)
            chex.assert_trees_all_close(chunked, oracle, rtol=1e-4, atol=1e-6)
            # Norms and the clipped mean, from the looped gradients in NumPy.
            flat = np.concatenate([np.asarray(g, np.float64).reshape(5, -1)
                                   for g in jax.tree.leaves(oracle)], axis=1)
            norms = np.linalg.norm(flat, axis=1)
            np.testing.assert_allclose(
                jax.jit(grads.per_example_grad_norms(loss, (None, None, 0)))(
                    params, target, batch), norms, rtol=1e-4)
            max_norm = float(np.median(norms))
            factors = np.minimum(1.0, max_norm / norms)
            expected = jax.tree.map(
                lambda g, c=factors: np.tensordot(c, np.asarray(g, np.float64), axes=1) / 5,
                oracle)
            clipped = jax.jit(grads.clipped_mean_grad(loss, max_norm, (None, None, 0)))(
                params, target, batch)
            chex.assert_trees_all_close(clipped, expected, rtol=1e-4, atol=1e-6)
            with pytest.raises(ValueError, match="method 'layerwise' needs argument `structure`"):
                grads.per_example_grads(loss, (None, None, 0), method="layerwise")

    def test_noisy_and_iqn_with_torso(self):
        batch = _batch(batch_size=4, seed=3)
        for kind in ("noisy", "iqn"):
            vf, _ = _network(kind)
            params, target = _params(kind, seed=0), _params(kind, seed=1)
            if kind == "iqn":  # [N, A] quantiles: Q-learning on their mean over N.
                vf = values.ValueFn(vf.init, lambda p, o, f=vf.apply: jnp.mean(f(p, o), 0))
            loss = losses.td_loss(vf, "q_learning")
            per_example = jax.jit(grads.per_example_grads(loss, (None, None, 0)))(
                params, target, batch)
            chex.assert_trees_all_close(per_example, _loop_grads(loss, params, target, batch),
                                        rtol=1e-4, atol=1e-6)
