"""Value functions: shapes, initial values, hand-checked outputs, bad input, Flax."""

from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tdkit import features, values

KEY = jax.random.key(0)


class TabularTest(chex.TestCase):

    def test_params_and_init_value(self):
        vf = values.tabular(5, 3, init_value=2.5)
        params = vf.init(KEY, jnp.int32(0))
        chex.assert_shape(params["table"], (5, 3))
        chex.assert_type(params["table"], jnp.float32)
        np.testing.assert_array_equal(params["table"], np.full((5, 3), 2.5))
        state_values = values.tabular(4).init(KEY, jnp.int32(0))
        np.testing.assert_array_equal(state_values["table"], np.zeros(4))

    @chex.variants(with_jit=True, without_jit=True)
    def test_apply_reads_the_row(self):
        vf = values.tabular(3, 2)
        params = {"table": jnp.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])}
        apply = self.variant(vf.apply)
        np.testing.assert_array_equal(apply(params, jnp.int32(1)), [3.0, 4.0])
        v = values.tabular(3)
        out = self.variant(v.apply)({"table": jnp.array([1.0, 2.0, 3.0])}, jnp.int32(2))
        chex.assert_shape(out, ())
        assert out == 3.0

    def test_out_of_range_state_is_nan_not_clamped(self):
        vf = values.tabular(3, 2)
        params = vf.init(KEY, jnp.int32(0))
        assert np.all(np.isnan(jax.jit(vf.apply)(params, jnp.int32(3))))
        assert np.all(np.isnan(vf.apply(params, jnp.int32(-7))))

    def test_batched_by_vmap(self):
        vf = values.tabular(4, 2, init_value=1.0)
        params = vf.init(KEY, jnp.int32(0))
        out = jax.vmap(vf.apply, in_axes=(None, 0))(params, jnp.arange(4))
        chex.assert_shape(out, (4, 2))

    def test_wrong_obs_raises(self):
        vf = values.tabular(4, 2)
        params = vf.init(KEY, jnp.int32(0))
        with pytest.raises(AssertionError, match="tabular.apply: argument `obs` must have rank 0"):
            vf.apply(params, jnp.arange(3))
        with pytest.raises(AssertionError, match="argument `obs` must have a int dtype"):
            vf.apply(params, jnp.float32(1.0))
        with pytest.raises(AssertionError, match="tabular.init: argument `example_obs`"):
            vf.init(KEY, jnp.zeros(2, jnp.int32))

    def test_bad_sizes_raise(self):
        with pytest.raises(ValueError, match="argument `num_states` must be a positive int"):
            values.tabular(0)
        with pytest.raises(ValueError, match="argument `num_actions` must be a positive int"):
            values.tabular(3, 2.0)


class _SparseMap(NamedTuple):
    """A duck-typed sparse feature map: fn(obs) = sum of one_hot(indices(obs))."""

    num_features: int
    fn: Any
    indices: Any

    def __call__(self, obs):
        return self.fn(obs)


def _pair_map(num_features=6):
    """Features for an int state s: ones at indices (s, s + 1), i.e. two active features."""
    indices = lambda s: jnp.stack([s, s + 1]).astype(jnp.int32)
    fn = lambda s: jnp.zeros(num_features).at[indices(s)].add(1.0)
    return _SparseMap(num_features, fn, indices)


class LinearTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_state_value(self):
        vf = values.linear(3)
        params = vf.init(KEY, jnp.zeros(3))
        np.testing.assert_array_equal(params["w"], np.zeros(3))
        params = {"w": jnp.array([1.0, -2.0, 0.5])}
        out = self.variant(vf.apply)(params, jnp.array([2.0, 1.0, 4.0]))
        chex.assert_shape(out, ())
        np.testing.assert_allclose(out, 2.0 - 2.0 + 2.0)

    @chex.variants(with_jit=True, without_jit=True)
    def test_action_values_with_a_feature_callable(self):
        # phi(s) = one_hot(s, 4); q = w[s].
        vf = values.linear(4, 2, features=lambda s: jax.nn.one_hot(s, 4))
        params = vf.init(KEY, jnp.int32(0))
        chex.assert_shape(params["w"], (4, 2))
        params = {"w": jnp.arange(8.0).reshape(4, 2)}
        np.testing.assert_array_equal(self.variant(vf.apply)(params, jnp.int32(2)), [4.0, 5.0])

    @chex.variants(with_jit=True, without_jit=True)
    def test_sparse_features_sum_active_rows(self):
        vf = values.linear(6, 2, features=_pair_map())
        params = {"w": jnp.arange(12.0).reshape(6, 2)}
        # Active rows 3 and 4: [6, 7] + [8, 9].
        np.testing.assert_array_equal(self.variant(vf.apply)(params, jnp.int32(3)), [14.0, 16.0])

    @pytest.mark.slow
    def test_tile_coder_sparse_path_equals_dense_features(self):
        tiles = features.tile_coding(4, [-1.0, -1.0], [1.0, 1.0], 3, iht_size=64)
        vf = values.linear(tiles.num_features, 3, features=tiles)
        params = {"w": jax.random.normal(KEY, (tiles.num_features, 3))}
        obs = jax.random.uniform(jax.random.key(1), (10, 2), minval=-1.0, maxval=1.0)
        sparse = jax.vmap(vf.apply, in_axes=(None, 0))(params, obs)
        dense = np.asarray(jax.vmap(tiles)(obs)) @ np.asarray(params["w"])
        np.testing.assert_allclose(sparse, dense, rtol=1e-5, atol=1e-5)

    def test_wrong_obs_shape_raises(self):
        vf = values.linear(3, 2)
        params = vf.init(KEY, jnp.zeros(3))
        with pytest.raises(AssertionError, match=r"linear.apply: argument `obs` must have shape "
                           r"\(3,\) \(ONE observation; use jax.vmap for a batch\), got \(5, 3\)"):
            vf.apply(params, jnp.zeros((5, 3)))
        with pytest.raises(AssertionError, match=r"argument `obs` must have a float dtype"):
            vf.apply(params, jnp.zeros(3, jnp.int32))
        with pytest.raises(AssertionError, match=r"argument `obs` must have shape \(3,\)"):
            vf.apply(params, jnp.zeros(4))
        with pytest.raises(AssertionError, match=r"linear.init: argument `example_obs`"):
            vf.init(KEY, jnp.zeros(2))

    def test_feature_map_output_shape_checked(self):
        vf = values.linear(5, features=lambda s: jax.nn.one_hot(s, 4))
        with pytest.raises(AssertionError, match=r"argument `features\(obs\)` must have shape"):
            vf.apply({"w": jnp.zeros(5)}, jnp.int32(1))

    def test_feature_map_size_mismatch_raises(self):
        with pytest.raises(ValueError, match="argument `features` produces 6 features"):
            values.linear(5, features=_pair_map(6))


def _numpy_mlp(params, obs, layer_norm, eps=1e-5):
    """A plain NumPy forward pass (float64): relu hidden layers, optional LayerNorm."""
    x = np.asarray(obs, np.float64)
    for i, layer in enumerate(params):
        z = x @ np.asarray(layer["w"], np.float64) + np.asarray(layer["b"], np.float64)
        if i == len(params) - 1:
            return z
        if layer_norm:
            z = (z - z.mean()) / np.sqrt(z.var() + eps)
            z = z * np.asarray(layer["scale"]) + np.asarray(layer["offset"])
        x = np.maximum(z, 0.0)


class MLPTest(chex.TestCase):

    def test_param_shapes(self):
        params = values.mlp([8, 5], 3).init(KEY, jnp.zeros(4))
        chex.assert_trees_all_equal_shapes(
            params, [{"w": jnp.zeros((4, 8)), "b": jnp.zeros(8)},
                     {"w": jnp.zeros((8, 5)), "b": jnp.zeros(5)},
                     {"w": jnp.zeros((5, 3)), "b": jnp.zeros(3)}])
        ln = values.mlp([8], layer_norm=True).init(KEY, jnp.zeros(4))
        assert sorted(ln[0]) == ["b", "offset", "scale", "w"] and sorted(ln[1]) == ["b", "w"]
        np.testing.assert_array_equal(ln[0]["scale"], np.ones(8))
        np.testing.assert_array_equal(ln[0]["offset"], np.zeros(8))
        chex.assert_shape(ln[1]["w"], (8, 1))

    def test_init_depends_on_key_only(self):
        vf = values.mlp([8], 2)
        a, b = vf.init(KEY, jnp.zeros(3)), vf.init(KEY, jnp.ones(3))
        c = vf.init(jax.random.key(1), jnp.zeros(3))
        chex.assert_trees_all_equal(a, b)
        assert not np.allclose(a[0]["w"], c[0]["w"])

    @chex.variants(with_jit=True, without_jit=True)
    def test_matches_numpy_forward_with_and_without_layer_norm(self):
        for ln in (False, True):
            vf = values.mlp([16, 8], 3, layer_norm=ln)
            params = vf.init(KEY, jnp.zeros(4))
            # Non-trivial biases, scales and offsets so that every parameter matters.
            rng = np.random.default_rng(0)
            params = jax.tree.map(
                lambda p, rng=rng: np.asarray(p) + 0.3 * rng.standard_normal(p.shape, np.float32),
                params)
            obs = jnp.array([0.5, -1.0, 2.0, 0.1])
            out = self.variant(vf.apply)(params, obs)
            chex.assert_shape(out, (3,))
            np.testing.assert_allclose(out, _numpy_mlp(params, obs, ln), rtol=1e-5, atol=1e-5)

    def test_state_value_is_a_scalar(self):
        vf = values.mlp([4])
        params = vf.init(KEY, jnp.zeros(2))
        out = vf.apply(params, jnp.ones(2))
        chex.assert_shape(out, ())
        np.testing.assert_allclose(out, _numpy_mlp(params, np.ones(2), False)[0], rtol=1e-6)

    def test_no_hidden_layers_is_affine(self):
        vf = values.mlp([], 2)
        params = [{"w": jnp.array([[1.0, 2.0], [3.0, 4.0]]), "b": jnp.array([0.5, -0.5])}]
        np.testing.assert_allclose(vf.apply(params, jnp.array([1.0, 1.0])), [4.5, 5.5])

    @chex.variants(with_jit=True, without_jit=True)
    def test_atoms_are_the_output_layer_reshaped(self):
        vf = values.mlp([8], 3, num_atoms=4, layer_norm=True)
        params = vf.init(KEY, jnp.zeros(2))
        chex.assert_shape((params[1]["w"], params[1]["b"]), ((8, 12), (12,)))
        params = jax.tree.map(lambda p: p + 0.1, params)
        obs = jnp.array([0.5, -1.0])
        out = self.variant(vf.apply)(params, obs)
        chex.assert_shape(out, (3, 4))
        chex.assert_type(out, jnp.float32)
        # Row a holds action a's K atoms: units a * K, ..., a * K + K - 1.
        flat = _numpy_mlp(params, obs, True)
        np.testing.assert_allclose(out, flat.reshape(3, 4), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(out[1], flat[4:8], rtol=1e-5, atol=1e-5)
        state_atoms = values.mlp([8], num_atoms=5)
        out = state_atoms.apply(state_atoms.init(KEY, obs), obs)
        chex.assert_shape(out, (5,))
        assert values.per_example_structure(vf.apply) is not None

    def test_wrong_obs_shape_raises(self):
        vf = values.mlp([8], 2)
        params = vf.init(KEY, jnp.zeros(4))
        with pytest.raises(AssertionError, match=r"mlp.apply: argument `obs` must have shape "
                           r"\(4,\) \(ONE observation; use jax.vmap for a batch\), got \(32, 4\)"):
            vf.apply(params, jnp.zeros((32, 4)))
        with pytest.raises(AssertionError, match=r"mlp.apply: argument `obs` must have shape"):
            vf.apply(params, jnp.zeros(5))
        with pytest.raises(AssertionError, match="mlp.apply: argument `obs` must have a float"):
            vf.apply(params, jnp.zeros(4, jnp.int32))
        with pytest.raises(AssertionError, match="mlp.init: argument `example_obs` must have rank"):
            vf.init(KEY, jnp.zeros((2, 4)))

    def test_bad_parameters_raise(self):
        with pytest.raises(ValueError, match=r"argument `hidden_sizes\[1\]` must be a positive"):
            values.mlp([8, 0])
        with pytest.raises(ValueError, match="argument `num_outputs` must be a positive int"):
            values.mlp([8], -1)
        with pytest.raises(ValueError, match="argument `num_atoms` must be a positive int"):
            values.mlp([8], 3, num_atoms=0)
        with pytest.raises(ValueError, match="argument `layer_norm_eps` must be > 0"):
            values.mlp([8], layer_norm=True, layer_norm_eps=0.0)


class FlaxTest(chex.TestCase):

    def _module(self):
        import flax.linen as nn

        class QNetwork(nn.Module):
            @nn.compact
            def __call__(self, obs):
                hidden = nn.relu(nn.Dense(8)(obs))  # Dense_0
                return nn.Dense(2)(hidden)  # Dense_1

        return QNetwork()

    @chex.variants(with_jit=True, without_jit=True)
    def test_from_flax(self):
        module = self._module()
        vf = values.from_flax(module)
        params = vf.init(KEY, jnp.zeros(3))
        chex.assert_trees_all_equal(params, module.init(KEY, jnp.zeros(3)))
        obs = jnp.array([1.0, -2.0, 0.5])
        out = self.variant(vf.apply)(params, obs)
        chex.assert_shape(out, (2,))
        # By hand from the Flax variables: Dense(2)(relu(Dense(8)(obs))).
        p = jax.tree.map(np.asarray, params["params"])
        hidden = np.maximum(np.asarray(obs) @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"], 0)
        expected = hidden @ p["Dense_1"]["kernel"] + p["Dense_1"]["bias"]
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)

    def test_rejects_a_non_module(self):
        with pytest.raises(TypeError, match="from_flax: argument `module` must be a flax"):
            values.from_flax(lambda x: x)


def test_structure_is_attached_only_to_the_exact_apply():
    vf = values.mlp([4], 2)
    assert values.per_example_structure(vf.apply) is not None
    assert values.per_example_structure(lambda p, o: vf.apply(p, o)) is None
    assert values.per_example_structure(values.from_flax(FlaxTest()._module()).apply) is None
