"""tdkit.grads: per-example gradients, norms, clipping, chunking, the layerwise fast path.

Oracles: a Python loop of single-example gradients, NumPy norms and clipping of those, and
`-delta * x_tm1` computed by hand in NumPy for linear TD(0).
"""

from typing import Any, NamedTuple

import chex
import jax
import jax.extend.core as jex
import jax.numpy as jnp
import numpy as np
import pytest

import tdkit
from tdkit import grads, losses, values

B = 10


class _SparseMap(NamedTuple):
    """Duck-typed tile coder: phi(s) = sum of one_hot(indices(s)); index s appears twice."""

    num_features: int
    fn: Any
    indices: Any

    def __call__(self, obs):
        return self.fn(obs)


def _sparse_map(num_features=8):
    indices = lambda s: jnp.stack([s, s + 1, s]).astype(jnp.int32)
    fn = lambda s: jnp.zeros(num_features).at[indices(s)].add(1.0)
    return _SparseMap(num_features, fn, indices)


def _flax_module():
    import flax.linen as nn

    class QNetwork(nn.Module):
        @nn.compact
        def __call__(self, obs):
            return nn.Dense(3)(nn.tanh(nn.Dense(5)(obs)))

    return QNetwork()


def _perturbed(params, seed):
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda p: np.asarray(p) + 0.5 * rng.standard_normal(np.shape(p)).astype(np.float32),
        params)


def setup(kind, batch_size=B, seed=0):
    """(loss, params, target_params, batch, weights) for a small Q-learning problem."""
    rng = np.random.default_rng(seed)
    if kind == "tabular":
        value_fn = values.tabular(6, 3)
        obs = lambda: rng.integers(0, 6, batch_size).astype(np.int32)
        example = jnp.int32(0)
    elif kind == "linear_sparse":
        value_fn = values.linear(8, 3, features=_sparse_map())
        obs = lambda: rng.integers(0, 7, batch_size).astype(np.int32)
        example = jnp.int32(0)
    else:
        value_fn = {
            "linear": lambda: values.linear(5, 3),
            "mlp": lambda: values.mlp([6, 5], 3),
            "mlp_layer_norm": lambda: values.mlp([6, 5], 3, layer_norm=True),
            "flax": lambda: values.from_flax(_flax_module()),
        }[kind]()
        obs = lambda: rng.standard_normal((batch_size, 5)).astype(np.float32)
        example = jnp.zeros(5)
    params = _perturbed(value_fn.init(jax.random.key(seed), example), seed)
    target = _perturbed(params, seed + 1)
    batch = tdkit.Transition(
        obs_tm1=obs(), a_tm1=rng.integers(0, 3, batch_size).astype(np.int32),
        r_t=rng.standard_normal(batch_size).astype(np.float32),
        discount_t=np.full(batch_size, 0.9, np.float32), obs_t=obs())
    weights = rng.uniform(0.2, 1.0, batch_size).astype(np.float32)
    loss = losses.td_loss(value_fn, "q_learning", "huber")
    return loss, params, target, batch, weights


FAST_KINDS = ("tabular", "linear", "linear_sparse", "mlp", "mlp_layer_norm")


def loop_grads(loss, params, *args):
    """Oracle: a Python loop of jitted single-example gradients, stacked on axis 0."""
    single = jax.jit(jax.grad(loss))
    out = [single(params, args[0], *jax.tree.map(lambda x, i=i: x[i], args[1:]))
           for i in range(len(args[1].r_t))]
    return jax.tree.map(lambda *g: np.stack(g), *out)


def numpy_norms(per_example):
    leaves = [np.asarray(g, np.float64).reshape(g.shape[0], -1)
              for g in jax.tree.leaves(per_example)]
    return np.sqrt(sum(np.sum(g**2, axis=1) for g in leaves))


def numpy_clipped_mean(per_example, max_norm):
    norms = numpy_norms(per_example)
    factors = np.minimum(1.0, max_norm / norms)
    return jax.tree.map(
        lambda g: np.mean(g * factors.reshape((-1,) + (1,) * (g.ndim - 1)), axis=0),
        per_example)


def assert_close(actual, expected, rtol=1e-5, atol=1e-6):
    chex.assert_trees_all_close(
        jax.tree.map(np.asarray, actual), jax.tree.map(np.asarray, expected),
        rtol=rtol, atol=atol)


def td(loss, weighted=False):
    """The explicit options for a td_loss: target_params shared, its layerwise structure."""
    return {"in_axes": (None, None, 0, 0) if weighted else (None, None, 0),
            "structure": loss.structure}


@pytest.mark.parametrize("kind", FAST_KINDS + ("flax",))
def test_per_example_grads_equal_a_python_loop(kind):
    loss, params, target, batch, weights = setup(kind)
    expected = loop_grads(loss, params, target, batch, weights)
    for method in ("auto", "vmap"):
        fn = jax.jit(grads.per_example_grads(loss, **td(loss, True), method=method))
        assert_close(fn(params, target, batch, weights), expected)


@pytest.mark.parametrize("kind", FAST_KINDS)
def test_layerwise_norms_and_clipped_means_equal_vmap_and_the_loop(kind):
    loss, params, target, batch, weights = setup(kind)
    assert loss.structure is not None
    oracle = loop_grads(loss, params, target, batch, weights)
    oracle_norms = numpy_norms(oracle)
    max_norm = float(np.median(oracle_norms))  # About half the examples are clipped.
    norms, clipped = {}, {}
    for m in ("layerwise", "vmap"):
        norms[m], clipped[m] = jax.jit(lambda *a, m=m: (
            grads.per_example_grad_norms(loss, **td(loss, True), method=m)(*a),
            grads.clipped_mean_grad(loss, max_norm, **td(loss, True), method=m)(*a)))(
                params, target, batch, weights)
    np.testing.assert_allclose(norms["layerwise"], norms["vmap"], rtol=1e-5)
    np.testing.assert_allclose(norms["layerwise"], oracle_norms, rtol=1e-5)
    assert_close(clipped["layerwise"], clipped["vmap"])
    assert_close(clipped["layerwise"], numpy_clipped_mean(oracle, max_norm))


class PerExampleGradsTest(chex.TestCase):

    def test_mean_equals_the_batch_gradient(self):
        for kind in ("mlp", "linear_sparse"):
            loss, params, target, batch, weights = setup(kind)
            per_example = jax.jit(grads.per_example_grads(loss, **td(loss)))(params, target, batch)
            mean_loss = lambda p, t, b, loss=loss: jnp.mean(
                jax.vmap(loss, in_axes=(None, None, 0))(p, t, b))
            batch_grad = jax.grad(mean_loss)(params, target, batch)
            assert_close(jax.tree.map(lambda g: jnp.mean(g, axis=0), per_example), batch_grad)

    def test_linear_td_gradient_is_minus_delta_x(self):
        rng = np.random.default_rng(3)
        w = rng.standard_normal(4).astype(np.float32)
        x_tm1, x_t = (rng.standard_normal((B, 4)).astype(np.float32) for _ in range(2))
        r = rng.standard_normal(B).astype(np.float32)
        d = np.full(B, 0.9, np.float32)
        batch = tdkit.Transition(x_tm1, np.zeros(B, np.int32), r, d, x_t)
        loss = losses.td_loss(values.linear(4), "td_learning")
        delta = r + d * (x_t @ w) - x_tm1 @ w  # By hand, target weights = weights.
        expected = -delta[:, None] * x_tm1
        for method in ("auto", "vmap"):
            out = jax.jit(grads.per_example_grads(loss, **td(loss), method=method))(
                {"w": w}, {"w": w}, batch)
            np.testing.assert_allclose(out["w"], expected, rtol=1e-5, atol=1e-6)
        # Action values: -delta * outer(x_tm1, one_hot(a_tm1)).
        w2 = rng.standard_normal((4, 2)).astype(np.float32)
        a = rng.integers(0, 2, B).astype(np.int32)
        batch = tdkit.Transition(x_tm1, a, r, d, x_t)
        loss = losses.td_loss(values.linear(4, 2), "q_learning")
        q_tm1 = (x_tm1 @ w2)[np.arange(B), a]
        delta = r + d * np.max(x_t @ w2, axis=1) - q_tm1
        expected = -delta[:, None, None] * x_tm1[:, :, None] * np.eye(2)[a][:, None, :]
        out = jax.jit(grads.per_example_grads(loss, **td(loss)))({"w": w2}, {"w": w2}, batch)
        np.testing.assert_allclose(out["w"], expected, rtol=1e-5, atol=1e-6)

    def test_custom_loss_default_and_explicit_in_axes(self):
        # A loss outside td_loss: params shared, the other arguments batched.
        def loss(params, x, y):
            return 0.5 * (jnp.dot(params["w"], x) - y) ** 2

        rng = np.random.default_rng(0)
        params = {"w": rng.standard_normal(3).astype(np.float32)}
        x = rng.standard_normal((B, 3)).astype(np.float32)
        y = rng.standard_normal(B).astype(np.float32)
        expected = (x @ params["w"] - y)[:, None] * x  # By hand.
        np.testing.assert_allclose(
            grads.per_example_grads(loss)(params, x, y)["w"], expected, rtol=1e-5)
        out = grads.per_example_grads(loss, in_axes=(None, 1, 0))(params, x.T, y)
        np.testing.assert_allclose(out["w"], expected, rtol=1e-5)
        norms = grads.per_example_grad_norms(loss, in_axes=(None, 1, 0), chunk_size=3)(
            params, x.T, y)
        np.testing.assert_allclose(norms, np.linalg.norm(expected, axis=1), rtol=1e-5)

    def test_aux_td_loss_is_accepted(self):
        loss, params, target, batch, _ = setup("mlp")
        aux = losses.td_loss(values.mlp([6, 5], 3), "q_learning", "huber", has_aux=True)
        expected = loop_grads(loss, params, target, batch)
        for method in ("auto", "vmap"):
            fn = grads.per_example_grads(aux, **td(aux), has_aux=True, method=method)
            assert_close(fn(params, target, batch), expected)

    def test_compiles_once(self):
        loss, params, target, batch, _ = setup("mlp")
        for make in (lambda l: grads.per_example_grads(l, **td(l)),
                     lambda l: grads.per_example_grad_norms(l, **td(l)),
                     lambda l: grads.clipped_mean_grad(l, 1.0, **td(l, False))):
            fn = jax.jit(chex.assert_max_traces(make(loss), n=1))
            fn(params, target, batch)
            fn(params, target, jax.tree.map(lambda x: x[::-1], batch))


class FastPathTest(chex.TestCase):
    """The layerwise path equals the vmap path and the loop oracle (float32 tolerance)."""

    @pytest.mark.slow
    def test_chunking(self):
        # B = 10: chunks of 4 (two chunks and a remainder of 2) and of 5 (an exact split).
        for kind, methods in (("mlp_layer_norm", ("layerwise", "vmap")),
                              ("linear_sparse", ("layerwise",))):
            loss, params, target, batch, weights = setup(kind)
            args = (params, target, batch, weights)
            oracle = loop_grads(loss, params, *args[1:])
            expected = (oracle, numpy_norms(oracle), numpy_clipped_mean(oracle, 0.5))
            for method in methods:
                for chunk_size in (4, 5):
                    kw = {"chunk_size": chunk_size, "method": method, **td(loss, True)}
                    chunked = jax.jit(lambda *a, kw=kw, loss=loss: (
                        grads.per_example_grads(loss, **kw)(*a),
                        grads.per_example_grad_norms(loss, **kw)(*a),
                        grads.clipped_mean_grad(loss, 0.5, **kw)(*a)))(*args)
                    assert_close(chunked, expected)

    def test_never_materialises_per_example_gradients(self):
        # Per-example gradients of the [32, 16] layer would be a [B, 32, 16] array; the
        # layerwise path never builds anything that large (the largest is [B, 32]).
        value_fn = values.mlp([32, 16], 2, layer_norm=True)
        loss = losses.td_loss(value_fn, "q_learning", "huber")
        params = value_fn.init(jax.random.key(0), jnp.zeros(4))
        batch_size = 64
        batch = tdkit.Transition(
            jnp.zeros((batch_size, 4)), jnp.zeros(batch_size, jnp.int32),
            jnp.zeros(batch_size), jnp.ones(batch_size), jnp.zeros((batch_size, 4)))
        per_example_size = batch_size * 32 * 16
        for method, expect_large in (("layerwise", False), ("vmap", True)):
            for fn in (grads.per_example_grad_norms(loss, **td(loss), method=method),
                       grads.clipped_mean_grad(loss, 1.0, **td(loss), method=method)):
                largest = _largest_intermediate(fn, params, params, batch)
                assert (largest >= per_example_size) == expect_large, (method, largest)

    def test_method_auto_uses_the_fast_path_only_when_given_a_structure(self):
        # Nothing is read off the loss: without `structure`, even the td_loss itself takes
        # the vmap path; a wrapper with the loss's structure takes the layerwise path.
        loss, params, target, batch, _ = setup("mlp")
        wrapped = lambda *a: loss(*a)
        axes = (None, None, 0)
        for fn in (loss, wrapped):
            assert _largest_intermediate(
                grads.per_example_grad_norms(fn, axes), params, target, batch) >= B * 6 * 5
            assert _largest_intermediate(
                grads.per_example_grad_norms(fn, axes, structure=loss.structure), params,
                target, batch) < B * 6 * 5


def _largest_intermediate(fn, *args):
    """The largest number of elements of any value in the jaxpr of `fn(*args)`."""

    def walk(jaxpr):
        largest = 0
        for eqn in jaxpr.eqns:
            for var in eqn.outvars:
                largest = max(largest, int(np.prod(var.aval.shape, dtype=np.int64)))
            for param in eqn.params.values():
                for sub in param if isinstance(param, (tuple, list)) else (param,):
                    if isinstance(sub, jex.ClosedJaxpr):
                        largest = max(largest, walk(sub.jaxpr))
                    elif isinstance(sub, jex.Jaxpr):
                        largest = max(largest, walk(sub))
        return largest

    return walk(jax.make_jaxpr(fn)(*args).jaxpr)


class ClipTest(chex.TestCase):

    def test_clip_per_example_by_hand(self):
        per_example = {"a": jnp.array([[3.0, 0.0], [0.3, 0.0]]), "b": jnp.array([4.0, 0.4])}
        # Norms 5 and 0.5; max_norm 1 scales the first by 1/5 and leaves the second.
        out = grads.clip_per_example(per_example, 1.0)
        np.testing.assert_allclose(out["a"], [[0.6, 0.0], [0.3, 0.0]], rtol=1e-6)
        np.testing.assert_allclose(out["b"], [0.8, 0.4], rtol=1e-6)
        out = jax.jit(grads.clip_per_example)(per_example, jnp.float32(1.0))
        np.testing.assert_allclose(out["b"], [0.8, 0.4], rtol=1e-6)

    def test_clip_keeps_nan(self):
        out = grads.clip_per_example({"a": jnp.array([[jnp.nan, 1.0], [3.0, 4.0]])}, 1.0)
        assert np.isnan(out["a"][0, 0])
        np.testing.assert_allclose(out["a"][1], [0.6, 0.8], rtol=1e-6)

    def test_large_max_norm_gives_the_plain_mean(self):
        loss, params, target, batch, _ = setup("mlp")
        clipped = jax.jit(grads.clipped_mean_grad(loss, 1e9, **td(loss)))(params, target, batch)
        expected = jax.tree.map(lambda g: g.mean(axis=0), loop_grads(loss, params, target, batch))
        assert_close(clipped, expected)

    def test_non_positive_max_norm_raises(self):
        loss = setup("mlp")[0]
        for bad in (0.0, -1.0, float("nan"), float("inf")):
            with pytest.raises(ValueError, match="argument `max_norm` must be > 0"):
                grads.clipped_mean_grad(loss, bad)
            with pytest.raises(ValueError, match="clip_per_example: argument `max_norm`"):
                grads.clip_per_example({"a": jnp.ones((2, 2))}, bad)
        with pytest.raises(ValueError, match="argument `max_norm` must be a scalar"):
            grads.clipped_mean_grad(loss, jnp.ones(2))


class FiniteCheckTest(chex.TestCase):
    """A NaN in one observation gives a NaN gradient for that example."""

    def _nan_setup(self):
        loss, params, target, batch, _ = setup("mlp")
        batch = batch._replace(obs_tm1=batch.obs_tm1.copy())
        batch.obs_tm1[3, 0] = np.nan
        return loss, params, target, batch

    def test_nan_is_not_silently_averaged(self):
        loss, params, target, batch = self._nan_setup()
        for method in ("layerwise", "vmap"):
            mean = jax.jit(grads.clipped_mean_grad(loss, 1.0, **td(loss), method=method))(
                params, target, batch)
            assert np.isnan(np.asarray(mean[0]["w"])).any(), method
            norms = grads.per_example_grad_norms(loss, **td(loss), method=method)(
                params, target, batch)
            assert np.isnan(norms[3]) and np.isfinite(np.delete(norms, 3)).all()

    def test_opt_in_check_raises(self):
        loss, params, target, batch = self._nan_setup()
        for method in ("layerwise", "vmap"):
            with pytest.raises(AssertionError, match="per_example_grads: a per-example gradient "
                               "is not finite"):
                grads.per_example_grads(loss, **td(loss), method=method, check_finite=True)(
                    params, target, batch)
            with pytest.raises(AssertionError, match="clipped_mean_grad: a per-example gradient"):
                grads.clipped_mean_grad(loss, 1.0, **td(loss), method=method,
                                        check_finite=True)(params, target, batch)
        fn = chex.chexify(
            jax.jit(grads.per_example_grad_norms(loss, **td(loss), check_finite=True)),
            async_check=False)
        with pytest.raises(AssertionError, match="per_example_grad_norms: a per-example"):
            fn(params, target, batch)
        chex.assert_tree_all_finite(fn(*setup("mlp")[1:4]))
        chex.block_until_chexify_assertions_complete()

    def test_state_outside_the_table_has_zero_gradient_on_both_paths(self):
        loss, params, target, batch, _ = setup("tabular")
        batch = batch._replace(obs_tm1=batch.obs_tm1.copy())
        batch.obs_tm1[3] = 99  # Its value is NaN (tabular.apply), its gradient zero.
        assert np.isnan(jax.vmap(loss, in_axes=(None, None, 0))(params, target, batch)[3])
        for method in ("layerwise", "vmap"):
            norms = grads.per_example_grad_norms(loss, **td(loss), method=method)(
                params, target, batch)
            assert norms[3] == 0.0 and np.all(np.delete(norms, 3) > 0), method


class BadArgumentsTest(chex.TestCase):

    def test_options(self):
        loss = setup("mlp")[0]
        with pytest.raises(ValueError, match="argument `chunk_size` must be a positive int"):
            grads.per_example_grads(loss, chunk_size=0)
        with pytest.raises(ValueError, match="argument `method` must be one of"):
            grads.per_example_grad_norms(loss, method="ghost")
        with pytest.raises(ValueError, match="method 'layerwise' needs argument `structure`"):
            grads.per_example_grad_norms(loss, (None, None, 0), method="layerwise")
        flax_loss = setup("flax")[0]
        assert flax_loss.structure is None  # So td(flax_loss) falls back to vmap.
        with pytest.raises(ValueError, match="method 'layerwise' needs argument `structure`"):
            grads.clipped_mean_grad(flax_loss, 1.0, **td(flax_loss), method="layerwise")
        with pytest.raises(TypeError, match="argument `structure` must be a tdkit.values"):
            grads.per_example_grads(loss, structure=values.mlp([2], 2))

    def test_in_axes(self):
        loss, params, target, batch, _ = setup("mlp")
        fn = lambda in_axes: grads.per_example_grads(loss, in_axes, structure=loss.structure)(
            params, target, batch)
        with pytest.raises(ValueError, match="argument `in_axes` must have one entry per"):
            fn((None, 0))
        with pytest.raises(ValueError, match="argument `in_axes` must start with None"):
            fn((0, None, 0))
        with pytest.raises(ValueError, match="argument `in_axes` batches no argument"):
            fn((None, None, None))
        with pytest.raises(ValueError, match="entries must be None or an int"):
            fn((None, None, "0"))

    def test_batch_sizes(self):
        loss, params, target, batch, weights = setup("mlp")
        with pytest.raises(ValueError, match="batched arguments must share one batch size"):
            grads.per_example_grads(loss, **td(loss, True))(params, target, batch, weights[:4])
        one = jax.tree.map(lambda x: x[0], batch)
        with pytest.raises(ValueError, match="is batched along axis 0, but has a leaf of shape"):
            grads.per_example_grads(loss, **td(loss))(params, target, one)
        # The default in_axes batches target_params too; the error says what to pass.
        with pytest.raises(ValueError, match=r"share one batch size.*for a td_loss pass "
                           r"in_axes=\(None, None, 0\)"):
            grads.per_example_grads(loss)(params, target, batch)


@pytest.mark.slow
def test_benchmark_script_runs(tmp_path):
    import json
    import os
    import platform
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "scripts" / "bench_per_example.py"
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(script), "--batch-sizes", "4", "--repeats", "1",
         "--loop-repeats", "1", "--no-torch", "--out", str(out)],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(  # works without installing too
            filter(None, [str(script.parents[1]), os.environ.get("PYTHONPATH")]))})
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["info"]["jax_platform"] == "cpu"
    libc, version = platform.libc_ver()
    if (platform.system() == "Linux" and libc == "glibc"
            and tuple(int(v) for v in version.split(".")[:2]) >= (2, 35)):
        # The default `--malloc hugepages` re-ran the script with glibc's THP tunable.
        assert "glibc.malloc.hugetlb=1" in result["info"]["glibc_tunables"]
    assert [(r["value_fn"], r["batch_size"]) for r in result["rows"]] == [
        ("mlp", 4), ("tile_linear", 4)]
    for row in result["rows"]:
        assert set(row["ms"]) == {"batched", "per_example", "vmap_grad", "loop", "norms",
                                  "clipped_mean"}
        assert all(ms > 0 for ms in row["ms"].values())
