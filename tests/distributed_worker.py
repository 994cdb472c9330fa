"""One process of the two-process `jax.distributed` test (tests/test_distributed.py).

Started twice by the test with `TDKIT_COORDINATOR_ADDRESS`, `TDKIT_NUM_PROCESSES=2`,
`TDKIT_PROCESS_ID` and two forced CPU devices each (`XLA_FLAGS`). Both processes build one
4-device mesh over both processes and compute, on arrays sharded across them:

- `grads`: per-example gradients of linear TD(0) over the global batch
  (`tdkit.parallel.sharded_per_example_grads`), gathered back to every process;
- `clipped_mean`: their clipped mean (a `pmean` across processes);
- `sum_sq`: the sum of squares of a batch assembled from each process's own rows
  (`shard_process_local`), reduced across processes by a jitted `jnp.sum`;
- `normals`: one standard normal per member from typed PRNG keys sharded across processes.

Prints one line `RESULT {json}` and exits 0, or exits non-zero with a traceback.
"""

import json

import numpy as np

BATCH = 8
FEATURES = 3
GAMMA = 0.9
MAX_NORM = 1.0


def make_problem():
    """NumPy linear TD(0) data, identical in every process: (w, w_target, x_tm1, r, d, x_t)."""
    rng = np.random.default_rng(7)
    w = rng.standard_normal(FEATURES).astype(np.float32)
    w_target = rng.standard_normal(FEATURES).astype(np.float32)
    x_tm1 = rng.standard_normal((BATCH, FEATURES)).astype(np.float32)
    x_t = rng.standard_normal((BATCH, FEATURES)).astype(np.float32)
    r_t = rng.standard_normal(BATCH).astype(np.float32)
    discount_t = np.where(rng.random(BATCH) < 0.25, 0.0, GAMMA).astype(np.float32)
    return w, w_target, x_tm1, r_t, discount_t, x_t


def main() -> dict:
    from tdkit import parallel

    info = parallel.initialize_distributed(initialization_timeout=60)

    import jax
    import jax.numpy as jnp
    from jax.sharding import NamedSharding, PartitionSpec

    from tdkit import Transition, losses, values

    assert info.process_count == 2, info
    assert len(info.local_devices) == 2 and len(info.devices) == 4, info
    mesh = parallel.make_mesh("all")
    sharding = NamedSharding(mesh, PartitionSpec("batch"))
    assert not sharding.is_fully_addressable

    w, w_target, x_tm1, r_t, discount_t, x_t = make_problem()
    batch = Transition(obs_tm1=x_tm1, a_tm1=np.zeros(BATCH, np.int32), r_t=r_t,
                       discount_t=discount_t, obs_t=x_t)
    loss = losses.td_loss(values.linear(FEATURES), "td_learning")

    per_example = parallel.sharded_per_example_grads(loss, "all", (None, None, 0))(
        {"w": w}, {"w": w_target}, batch)
    assert len(per_example["w"].addressable_shards) == 2
    assert per_example["w"].sharding.is_equivalent_to(sharding, 2)
    grads = parallel.gather_to_host(per_example)["w"]

    clipped = parallel.sharded_clipped_mean_grad(loss, MAX_NORM, "all", (None, None, 0))(
        {"w": w}, {"w": w_target}, batch)
    assert clipped["w"].sharding.is_fully_replicated

    # This process's rows, in the order of its devices in the mesh.
    rows = sorted(sharding.addressable_devices_indices_map((BATCH,)).values(),
                  key=lambda index: index[0].start)
    local_rows = np.concatenate([x_tm1[index] for index in rows])
    global_x = parallel.shard_process_local(local_rows, sharding)
    assert global_x.shape == (BATCH, FEATURES)
    sum_sq = jax.jit(lambda x: jnp.sum(x * x), out_shardings=NamedSharding(
        mesh, PartitionSpec()))(global_x)

    keys = parallel.shard_leading(jax.random.split(jax.random.key(0), 4), mesh)
    normals = jax.jit(jax.vmap(lambda k: jax.random.normal(k, ())))(keys)
    assert len(normals.sharding.device_set) == 4

    return {"process": info.process_index, "grads": grads.tolist(),
            "clipped_mean": np.asarray(clipped["w"]).tolist(), "sum_sq": float(sum_sq),
            "normals": parallel.gather_to_host(normals).tolist()}


if __name__ == "__main__":
    print("RESULT " + json.dumps(main()), flush=True)
