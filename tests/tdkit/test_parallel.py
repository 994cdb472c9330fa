"""tdkit.parallel: device resolution, member sharding, sharded per-example gradients.

Oracles: `-delta * x_tm1` computed by hand in NumPy for linear TD(0) (and its clipped mean),
and, on four forced host devices, the unsharded computation (`tdkit.grads`, the jitted loop
without sharding; both are tested against their own oracles elsewhere).

The pytest process has already started JAX (usually with one CPU device), so the checks that
need four devices run in a subprocess whose environment sets
`XLA_FLAGS=--xla_force_host_platform_device_count=4`: this file run as a script
(`python -m tests.tdkit.test_parallel --four-devices`) prints one JSON line of results.
"""

import json
import os
import subprocess
import sys
import traceback
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec

from tdkit import Transition, grads, losses, parallel, values

F = 3  # Features of the linear TD(0) problem.
GAMMA = 0.9


def linear_td_problem(batch_size, seed=0):
    """(loss, params, target_params, transitions, NumPy oracle grads [B, F]) for linear TD(0).

    `v(x) = w . x`, `loss = 0.5 * (r + discount * w_target . x_t - w . x_tm1)^2`, so the
    per-example gradient is `-delta * x_tm1`.
    """
    rng = np.random.default_rng(seed)
    value_fn = values.linear(F)
    loss = losses.td_loss(value_fn, "td_learning")
    w = rng.standard_normal(F).astype(np.float32)
    w_target = rng.standard_normal(F).astype(np.float32)
    x_tm1 = rng.standard_normal((batch_size, F)).astype(np.float32)
    x_t = rng.standard_normal((batch_size, F)).astype(np.float32)
    r_t = rng.standard_normal(batch_size).astype(np.float32)
    discount_t = np.where(rng.random(batch_size) < 0.2, 0.0, GAMMA).astype(np.float32)
    batch = Transition(obs_tm1=x_tm1, a_tm1=np.zeros(batch_size, np.int32), r_t=r_t,
                       discount_t=discount_t, obs_t=x_t)
    delta = r_t + discount_t * (x_t @ w_target) - x_tm1 @ w
    expected = -delta[:, None] * x_tm1
    return loss, {"w": w}, {"w": w_target}, batch, expected


TD = (None, None, 0)  # A td_loss: params and target_params shared, transitions batched.
TDW = (None, None, 0, 0)  # ... and importance weights batched.


def clipped_mean_oracle(per_example, max_norm):
    norms = np.linalg.norm(per_example, axis=1)
    factors = np.minimum(1.0, max_norm / norms)
    return (factors[:, None] * per_example).mean(axis=0)


# --------------------------------------------------------------------------------------
# In the pytest process (any number of devices; usually one CPU device).
# --------------------------------------------------------------------------------------


def test_resolve_devices_none_all_and_counts():
    available = jax.devices()
    assert parallel.resolve_devices() == [available[0]]
    assert parallel.resolve_devices(None) == [available[0]]
    assert parallel.resolve_devices("all") == list(available)
    assert parallel.resolve_devices(1) == [available[0]]
    assert parallel.resolve_devices("1") == [available[0]]
    assert parallel.resolve_devices(np.int64(1)) == [available[0]]
    assert parallel.resolve_devices(available[:1]) == [available[0]]


@pytest.mark.parametrize("bad", [0, -1, "0", True, "two", "", [], 2.0])
def test_resolve_devices_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="argument `devices`"):
        parallel.resolve_devices(bad)


def test_resolve_devices_too_many_lists_what_exists():
    count, platform = len(jax.devices()), jax.devices()[0].platform
    with pytest.raises(ValueError, match=rf"asks for {count + 1} device\(s\), but {count} "
                                         rf"exist: \[{platform}:0"):
        parallel.resolve_devices(count + 1)
    if platform == "cpu":  # The hint about forced host devices is for CPUs only.
        with pytest.raises(ValueError, match="xla_force_host_platform_device_count"):
            parallel.resolve_devices(str(count + 1))


def test_resolve_devices_rejects_repeated_device():
    device = jax.devices()[0]
    with pytest.raises(ValueError, match="lists a device twice"):
        parallel.resolve_devices([device, device])


def test_make_mesh_is_one_dimensional_and_named():
    mesh = parallel.make_mesh(1, axis_name="x")
    assert mesh.axis_names == ("x",)
    assert mesh.devices.shape == (1,)
    assert parallel.make_mesh(mesh) is mesh
    with pytest.raises(ValueError, match="1-D mesh"):
        parallel.make_mesh(jax.sharding.Mesh(np.asarray(jax.devices()[:1]).reshape(1, 1),
                                             ("a", "b")))


def test_member_sharding_spec_and_bad_member_counts():
    sharding = parallel.member_sharding(None, 6)
    assert isinstance(sharding, NamedSharding)
    assert sharding.spec == PartitionSpec("members")
    assert sharding.mesh.axis_names == ("members",)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="argument `num_members`"):
            parallel.member_sharding(None, bad)


def test_shard_leading_places_arrays_and_typed_keys():
    sharding = parallel.member_sharding(1, 4)
    tree = {"keys": jax.random.split(jax.random.key(0), 4),
            "x": np.arange(8.0, dtype=np.float32).reshape(4, 2)}
    placed = parallel.shard_leading(tree, sharding)
    assert placed["x"].sharding == sharding
    assert placed["keys"].sharding == sharding
    assert jax.dtypes.issubdtype(placed["keys"].dtype, jax.dtypes.prng_key)
    np.testing.assert_array_equal(np.asarray(placed["x"]), tree["x"])
    np.testing.assert_array_equal(jax.random.key_data(placed["keys"]),
                                  jax.random.key_data(tree["keys"]))
    # A mesh stands for the sharding of its axis over the leading axis.
    mesh = parallel.make_mesh(1)
    from_mesh = parallel.shard_leading(tree, mesh)
    assert from_mesh["x"].sharding.is_equivalent_to(NamedSharding(mesh, PartitionSpec("batch")),
                                                    2)


def test_shard_process_local_with_one_process_keeps_the_rows():
    mesh = parallel.make_mesh(1)
    tree = {"keys": jax.random.split(jax.random.key(2), 2), "x": np.arange(6.0).reshape(2, 3)}
    out = parallel.shard_process_local(tree, mesh)
    assert out["x"].shape == (2, 3) and out["keys"].shape == (2,)
    np.testing.assert_array_equal(np.asarray(out["x"]), tree["x"])
    np.testing.assert_array_equal(jax.random.key_data(out["keys"]),
                                  jax.random.key_data(tree["keys"]))
    with pytest.raises(ValueError, match=r"leaf \['s'\] is a scalar"):
        parallel.shard_process_local({"s": np.zeros(())}, mesh)


def test_shard_leading_rejects_scalars_and_bad_shardings():
    sharding = parallel.member_sharding(1, 1)
    with pytest.raises(ValueError, match=r"leaf \['step'\] is a scalar"):
        parallel.shard_leading({"step": jnp.zeros(()), "x": jnp.zeros((2,))}, sharding)
    replicated = NamedSharding(sharding.mesh, PartitionSpec())
    with pytest.raises(ValueError, match="argument `sharding`"):
        parallel.shard_leading({"x": jnp.zeros((2,))}, replicated)


def test_gather_to_host_returns_numpy_and_keys():
    tree = {"x": jnp.arange(4.0), "k": jax.random.split(jax.random.key(1), 2)}
    out = parallel.gather_to_host(parallel.shard_leading(tree, parallel.make_mesh(1)))
    assert isinstance(out["x"], np.ndarray)
    np.testing.assert_array_equal(out["x"], np.arange(4.0))
    np.testing.assert_array_equal(jax.random.key_data(out["k"]), jax.random.key_data(tree["k"]))


def test_sharded_per_example_grads_match_linear_td_oracle():
    loss, params, target_params, batch, expected = linear_td_problem(8)
    fn = parallel.sharded_per_example_grads(loss, devices=1, in_axes=TD)
    out = fn(params, target_params, batch)
    np.testing.assert_allclose(out["w"], expected, rtol=1e-5, atol=1e-6)
    batch_sharding = NamedSharding(parallel.make_mesh(1), PartitionSpec("batch"))
    assert out["w"].sharding.is_equivalent_to(batch_sharding, 2)
    for structure in (None, loss.structure):  # vmap and layerwise.
        norms = parallel.sharded_per_example_grad_norms(
            loss, devices=1, in_axes=TD, structure=structure)(params, target_params, batch)
        np.testing.assert_allclose(norms, np.linalg.norm(expected, axis=1), rtol=1e-5)


def test_sharded_clipped_mean_grad_matches_oracle():
    loss, params, target_params, batch, expected = linear_td_problem(8, seed=1)
    max_norm = float(np.median(np.linalg.norm(expected, axis=1)))
    for structure in (None, loss.structure):  # vmap and layerwise.
        fn = parallel.sharded_clipped_mean_grad(loss, max_norm, devices=1, in_axes=TD,
                                                structure=structure)
        out = fn(params, target_params, batch)
        np.testing.assert_allclose(out["w"], clipped_mean_oracle(expected, max_norm),
                                   rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="argument `max_norm`"):
        parallel.sharded_clipped_mean_grad(loss, -1.0, devices=1)
    with pytest.raises(ValueError, match="method 'layerwise' needs argument `structure`"):
        parallel.sharded_clipped_mean_grad(loss, 1.0, devices=1, method="layerwise")


def test_sharded_grads_of_an_aux_loss():
    loss, params, target_params, batch, expected = linear_td_problem(4, seed=3)
    aux = losses.td_loss(values.linear(F), "td_learning", has_aux=True)
    out = parallel.sharded_per_example_grads(aux, devices=1, in_axes=TD, has_aux=True)(
        params, target_params, batch)
    np.testing.assert_allclose(out["w"], expected, rtol=1e-5, atol=1e-6)


def test_sharded_per_example_grads_batch_axis_not_first():
    """A custom loss whose batch axis is 1: `loss(w, x) = 0.5 * (w . x)^2`, grad `(w . x) x`."""
    rng = np.random.default_rng(2)
    w = rng.standard_normal(F).astype(np.float32)
    xs = rng.standard_normal((F, 6)).astype(np.float32)  # [F, B]
    loss = lambda w, x: 0.5 * jnp.dot(w, x) ** 2
    out = parallel.sharded_per_example_grads(loss, devices=1, in_axes=(None, 1))(w, xs)
    np.testing.assert_allclose(out, (w @ xs)[:, None] * xs.T, rtol=1e-5, atol=1e-6)


def test_sharded_per_example_grads_compile_once():
    loss, params, target_params, batch, _ = linear_td_problem(4)
    traced = chex.assert_max_traces(lambda *a: loss(*a), n=1)
    fn = parallel.sharded_per_example_grads(traced, devices=1, in_axes=(None, None, 0),
                                            method="vmap")
    for scale in (1.0, 2.0, 3.0):
        scaled = {"w": scale * params["w"]}
        jax.block_until_ready(fn(scaled, target_params, batch))


@pytest.mark.parametrize("in_axes, message", [
    ((None, None), "one entry per argument"),
    ((0, None, 0), "must start with None"),
    ((None, None, "0"), "None or an int"),
    ((None, None, None), "batches no argument"),
])
def test_sharded_grads_reject_bad_in_axes(in_axes, message):
    loss, params, target_params, batch, _ = linear_td_problem(4)
    fn = parallel.sharded_per_example_grads(loss, devices=1, in_axes=in_axes)
    with pytest.raises(ValueError, match=message):
        fn(params, target_params, batch)


def test_sharded_grads_reject_mismatched_batch_sizes():
    loss, params, target_params, batch, _ = linear_td_problem(4)
    batch = batch._replace(r_t=np.zeros(5, np.float32))
    fn = parallel.sharded_per_example_grads(loss, devices=1, in_axes=TD)
    with pytest.raises(ValueError, match=r"share one batch size, got sizes \[4, 5\]"):
        fn(params, target_params, batch)


def test_default_in_axes_batch_target_params_and_say_so():
    loss, params, target_params, batch, _ = linear_td_problem(4)
    fn = parallel.sharded_per_example_grads(loss, devices=1)  # (None, 0, 0): target batched
    with pytest.raises(ValueError, match=r"share one batch size, got sizes \[3, 4\] \(the "
                       r"default in_axes .* pass in_axes=\(None, None, 0\)"):
        fn(params, target_params, batch)


def test_sharded_grads_reject_too_many_devices_at_construction():
    loss = linear_td_problem(4)[0]
    with pytest.raises(ValueError, match="argument `devices`"):
        parallel.sharded_per_example_grads(loss, devices=len(jax.devices()) + 1)


@pytest.fixture
def clean_distributed_env(monkeypatch):
    for name in (parallel.COORDINATOR_ENV, parallel.NUM_PROCESSES_ENV, parallel.PROCESS_ID_ENV,
                 parallel.LOCAL_DEVICE_IDS_ENV):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_initialize_distributed_refuses_partial_settings(clean_distributed_env):
    clean_distributed_env.setenv(parallel.COORDINATOR_ENV, "127.0.0.1:1234")
    with pytest.raises(ValueError, match=r"missing: `num_processes` \(TDKIT_NUM_PROCESSES\), "
                                         r"`process_id` \(TDKIT_PROCESS_ID\)"):
        parallel.initialize_distributed()
    assert not jax.distributed.is_initialized()


@pytest.mark.parametrize("env, message", [
    ({parallel.NUM_PROCESSES_ENV: "two"}, "TDKIT_NUM_PROCESSES must be an int"),
    ({parallel.PROCESS_ID_ENV: "2", parallel.NUM_PROCESSES_ENV: "2",
      parallel.COORDINATOR_ENV: "127.0.0.1:1"}, r"`process_id` must be in \[0, 2\)"),
    ({parallel.PROCESS_ID_ENV: "0", parallel.NUM_PROCESSES_ENV: "0",
      parallel.COORDINATOR_ENV: "127.0.0.1:1"}, "`num_processes` must be >= 1"),
    ({parallel.LOCAL_DEVICE_IDS_ENV: "0,x"}, "TDKIT_LOCAL_DEVICE_IDS must be comma-separated"),
])
def test_initialize_distributed_rejects_malformed_settings(clean_distributed_env, env, message):
    for name, value in env.items():
        clean_distributed_env.setenv(name, value)
    with pytest.raises(ValueError, match=message):
        parallel.initialize_distributed()
    assert not jax.distributed.is_initialized()


# --------------------------------------------------------------------------------------
# Four forced host devices, in a subprocess.
# --------------------------------------------------------------------------------------

FOUR_DEVICE_CHECKS = ("devices", "errors", "loop_sharded", "loop_matches", "grads_sharded",
                      "grads_match", "clipped_mean", "batch_errors")


@pytest.fixture(scope="module")
def four_device_report():
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                        " --xla_force_host_platform_device_count=4").strip()
    env["JAX_PLATFORMS"] = "cpu"
    result = subprocess.run([sys.executable, "-m", "tests.tdkit.test_parallel", "--four-devices"],
                            cwd=Path(__file__).resolve().parents[2], env=env,
                            capture_output=True, text=True, timeout=600)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert result.returncode == 0 and lines, (
        f"four-device subprocess failed (exit {result.returncode}):\n{result.stdout}\n"
        f"{result.stderr[-4000:]}")
    return json.loads(lines[-1])


@pytest.mark.slow
@pytest.mark.parametrize("check", FOUR_DEVICE_CHECKS)
def test_four_devices(four_device_report, check):
    assert four_device_report.get(check) == "ok", four_device_report.get(check, "not run")


def _assert_trees_close(actual, expected, rtol=1e-5, atol=1e-6):
    as_data = lambda tree: jax.tree.map(
        lambda x: jax.random.key_data(x)
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x, tree)
    actual, expected = jax.device_get((as_data(actual), as_data(expected)))
    chex.assert_trees_all_equal_structs(actual, expected)
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        if jax.dtypes.issubdtype(np.asarray(a).dtype, jnp.floating):
            np.testing.assert_allclose(a, e, rtol=rtol, atol=atol)
        else:
            np.testing.assert_array_equal(a, e)


def _assert_sharded(tree, sharding, count):
    for leaf in jax.tree.leaves(tree):
        assert leaf.sharding.is_equivalent_to(sharding, leaf.ndim), leaf.sharding
        assert len(leaf.addressable_shards) == count
        assert {s.device for s in leaf.addressable_shards} == set(sharding.mesh.devices.flat)
        assert leaf.addressable_shards[0].data.shape[0] == leaf.shape[0] // count


def _four_device_checks():
    """Runs in a process with 4 host devices; returns {check: "ok" | failure text}."""
    import envs
    from agents import dqn, jax_loop

    report = {}

    def check(name):
        def run(fn):
            try:
                fn()
                report[name] = "ok"
            except Exception:  # Reported to the pytest process, which fails the test.
                report[name] = traceback.format_exc()
        return run

    @check("devices")
    def _():
        assert len(jax.devices()) == 4, jax.devices()
        assert parallel.resolve_devices("all") == jax.devices()
        assert parallel.resolve_devices(3) == jax.devices()[:3]
        assert parallel.make_mesh("all").devices.shape == (4,)

    @check("errors")
    def _():
        for bad in (5, "5"):
            try:
                parallel.member_sharding(bad, 8)
                raise AssertionError("5 devices accepted")
            except ValueError as error:
                assert "asks for 5 device(s), but 4 exist" in str(error), error
        try:
            parallel.member_sharding("all", 6)
            raise AssertionError("6 members over 4 devices accepted")
        except ValueError as error:
            assert ("6 members (seeds x settings) do not divide evenly over 4 devices; use a "
                    "multiple of 4 members (e.g. 8)") in str(error), error
        assert parallel.member_sharding(2, 6).mesh.devices.size == 2

    # The jitted DQN loop, 2 learning rates x 2 seeds = 4 members, vmapped.
    env, env_params = envs.make("CartPole-v1")
    config = dqn.DQNConfig(hidden_sizes=(16,), buffer_size=64, batch_size=8,
                           learning_starts=8, target_period=4, epsilon_decay_steps=20)
    agent = dqn.dqn(2, config)
    loop = jax_loop.make_jax_loop(agent, env, env_params, num_envs=2, eval_episodes=0)
    keys = jax.vmap(jax.random.key)(jnp.arange(4, dtype=jnp.uint32) % 2)
    hparams = {"learning_rate": jnp.asarray([1e-3, 1e-3, 3e-3, 3e-3], jnp.float32)}
    state = jax.jit(jax.vmap(loop.init))(keys, hparams)
    run = jax.jit(jax.vmap(lambda s: loop.run(s, 12)))
    sharding = parallel.member_sharding("all", 4)
    outputs = {}

    @check("loop_sharded")
    def _():
        sharded = parallel.shard_leading(state, sharding)
        _assert_sharded(sharded, sharding, 4)
        outputs["sharded"] = run(sharded)
        _assert_sharded(outputs["sharded"], sharding, 4)

    @check("loop_matches")
    def _():
        new_state, metrics = run(state)
        assert bool(metrics.learned.any()), "no gradient step in the checked iterations"
        assert len(jax.tree.leaves(new_state)[0].sharding.device_set) == 1
        _assert_trees_close(outputs["sharded"], (new_state, metrics), rtol=1e-4, atol=1e-5)

    # Per-example gradients of the CartPole Q-network (MLP) with the q_learning Huber loss.
    value_fn = values.mlp([16, 8], 2)
    loss = losses.td_loss(value_fn, "q_learning", "huber")
    ks = jax.random.split(jax.random.key(3), 5)
    batch = Transition(
        obs_tm1=jax.random.normal(ks[0], (16, 4)), a_tm1=jax.random.randint(ks[1], (16,), 0, 2),
        r_t=jax.random.normal(ks[2], (16,)), discount_t=jnp.full((16,), GAMMA),
        obs_t=jax.random.normal(ks[3], (16, 4)))
    weights = jax.random.uniform(ks[4], (16,))
    params = value_fn.init(jax.random.key(4), batch.obs_tm1[0])
    target_params = jax.tree.map(lambda p: 0.5 * p, params)
    batch_sharding = NamedSharding(parallel.make_mesh("all"), PartitionSpec("batch"))

    @check("grads_sharded")
    def _():
        fn = parallel.sharded_per_example_grads(loss, "all", TD, structure=loss.structure)
        out = fn(params, target_params, batch)
        _assert_sharded(out, batch_sharding, 4)
        inside_jit = jax.jit(fn)(params, target_params, batch)  # Called from a caller's jit.
        _assert_sharded(inside_jit, batch_sharding, 4)
        _assert_trees_close(inside_jit, out)
        norms = parallel.sharded_per_example_grad_norms(
            loss, "all", TD, structure=loss.structure, chunk_size=2)(params, target_params, batch)
        _assert_sharded(norms, batch_sharding, 4)

    @check("grads_match")
    def _():
        kw = {"structure": loss.structure}
        for method in ("layerwise", "vmap"):
            expected = jax.jit(grads.per_example_grads(loss, TDW, **kw, method=method))(
                params, target_params, batch, weights)
            # Params committed to one device, the batch to another: both are re-placed.
            committed = jax.device_put(params, jax.devices()[1])
            out = parallel.sharded_per_example_grads(loss, 4, TDW, **kw, method=method)(
                committed, target_params, jax.device_put(batch, jax.devices()[2]), weights)
            _assert_trees_close(out, expected)
            norms = parallel.sharded_per_example_grad_norms(loss, 4, TDW, **kw, method=method)(
                params, target_params, batch, weights)
            _assert_trees_close(norms, jax.jit(grads.per_example_grad_norms(
                loss, TDW, **kw, method=method))(params, target_params, batch, weights))
        # The linear TD(0) oracle, sharded over 4 devices.
        lin_loss, lin_params, lin_target, lin_batch, lin_expected = linear_td_problem(8)
        out = parallel.sharded_per_example_grads(lin_loss, "all", TD)(
            lin_params, lin_target, lin_batch)
        np.testing.assert_allclose(out["w"], lin_expected, rtol=1e-5, atol=1e-6)

    @check("clipped_mean")
    def _():
        kw = {"structure": loss.structure}
        expected = jax.jit(grads.clipped_mean_grad(loss, 0.5, TDW, **kw))(
            params, target_params, batch, weights)
        out = parallel.sharded_clipped_mean_grad(loss, 0.5, "all", TDW, **kw, chunk_size=2)(
            params, target_params, batch, weights)
        _assert_trees_close(out, expected)
        for leaf in jax.tree.leaves(out):
            assert leaf.sharding.is_fully_replicated and len(leaf.sharding.device_set) == 4
        lin_loss, lin_params, lin_target, lin_batch, lin_expected = linear_td_problem(8, 5)
        out = parallel.sharded_clipped_mean_grad(lin_loss, 1.0, "all", TD)(
            lin_params, lin_target, lin_batch)
        np.testing.assert_allclose(out["w"], clipped_mean_oracle(lin_expected, 1.0),
                                   rtol=1e-5, atol=1e-6)

    @check("batch_errors")
    def _():
        fn = parallel.sharded_per_example_grads(loss, "all", TD)
        uneven = jax.tree.map(lambda x: x[:6], batch)
        try:
            fn(params, target_params, uneven)
            raise AssertionError("6 examples over 4 devices accepted")
        except ValueError as error:
            assert ("a batch of 6 examples does not divide evenly over 4 devices; use a batch "
                    "size that is a multiple of 4 (e.g. 8") in str(error), error
        try:
            parallel.sharded_per_example_grads(loss, 8)
            raise AssertionError("8 devices accepted")
        except ValueError as error:
            assert "asks for 8 device(s), but 4 exist" in str(error), error
        try:
            parallel.shard_leading({"x": jnp.zeros((6, 2))}, sharding)
            raise AssertionError("6 rows over 4 devices accepted")
        except ValueError as error:
            assert "leaf ['x'] has a leading axis of 6" in str(error), error

    return report


if __name__ == "__main__" and sys.argv[1:] == ["--four-devices"]:
    print(json.dumps(_four_device_checks()), flush=True)
