"""Scale-out on JAX's own SPMD machinery: device meshes, sharded arrays, several hosts.

Two workloads spread over devices:

- **Members** (seeds x hyperparameter settings) of a vmapped training run: every leaf of the
  loop state has a leading `[S]` axis; `member_sharding` shards it over a 1-D mesh and the
  same `jax.jit(jax.vmap(run))` then runs each device's members on that device (members
  never communicate, so the compiled program has no collectives):

      sharding = parallel.member_sharding("all", num_members=64)   # ValueError if uneven
      state = parallel.shard_leading(jax.jit(jax.vmap(loop.init))(keys, hparams), sharding)
      state, metrics = jax.jit(jax.vmap(lambda s: loop.run(s, 1000)))(state)   # stays sharded

- **Per-example gradients** over a large batch: `sharded_per_example_grads` (and
  `sharded_per_example_grad_norms`, `sharded_clipped_mean_grad`) run the matching
  `tdkit.grads` function on each device's slice of the batch (`jax.shard_map`) with the
  parameters replicated; the batch axis of the result stays sharded (the clipped mean is
  averaged across devices with `lax.pmean`).

Uneven division is refused, never padded: `B` examples (or `S` members) must be a multiple of
the number of devices, checked before anything is compiled.

Devices are chosen with `resolve_devices`: None (the first device), `"all"`, or a count `N`
(the first `N` of `jax.devices()`), on any platform (CPU, GPU, TPU). On a CPU, JAX shows one
device unless `XLA_FLAGS=--xla_force_host_platform_device_count=N` is set before JAX starts.

Several hosts (one process per host, every process runs the same program):

    export TDKIT_COORDINATOR_ADDRESS=10.0.0.1:1234   # process 0's host and a free port
    export TDKIT_NUM_PROCESSES=2
    export TDKIT_PROCESS_ID=0                        # 1 on the second host
    python my_script.py                              # calls parallel.initialize_distributed()

`initialize_distributed()` calls `jax.distributed.initialize` (first, before any other JAX
call); without those variables it falls back to JAX's auto-detection (SLURM, Open MPI,
Kubernetes, Cloud TPU, `JAX_COORDINATOR_ADDRESS`, ...). Afterwards `jax.devices()` lists the
devices of all processes, `"all"` meshes span every host, `shard_leading` places a value that
every process holds, `shard_process_local` assembles a global array from each process's own
rows, and `gather_to_host` brings a sharded result back to every process. CPU processes
communicate through gloo (JAX's default CPU collectives in 0.10; set if a JAX leaves it
unset). See docs/scaling.md.
"""

import os
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import chex
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from tdkit import grads as tdgrads
from tdkit import values

Array = chex.Array
ArrayTree = chex.ArrayTree
Devices = int | str | Sequence[jax.Device] | None
InAxes = Sequence[int | None] | None

COORDINATOR_ENV = "TDKIT_COORDINATOR_ADDRESS"
NUM_PROCESSES_ENV = "TDKIT_NUM_PROCESSES"
PROCESS_ID_ENV = "TDKIT_PROCESS_ID"
LOCAL_DEVICE_IDS_ENV = "TDKIT_LOCAL_DEVICE_IDS"


# --------------------------------------------------------------------------------------
# Devices, meshes and shardings.
# --------------------------------------------------------------------------------------


def resolve_devices(devices: Devices = None) -> list[jax.Device]:
    """The devices a computation should use.

    Args:
      devices: None (the first device, `jax.devices()[0]`), `"all"` (every device of every
        process), an int or digit string `N` (the first `N` devices), or a sequence of
        `jax.Device`s (returned as a list).

    Returns:
      A non-empty list of devices.

    Raises:
      ValueError: `N < 1`, more devices than exist (the message lists those that exist), or
        an unrecognised value.
    """
    available = jax.devices()
    if devices is None:
        return [available[0]]
    if isinstance(devices, str):
        text = devices.strip()
        if text == "all":
            return list(available)
        if not text.isdigit():
            raise ValueError(f"resolve_devices: argument `devices` must be None, 'all', a "
                             f"positive int or a list of devices, got {devices!r}")
        devices = int(text)
    if isinstance(devices, bool):
        raise ValueError(f"resolve_devices: argument `devices` must be None, 'all', a positive "
                         f"int or a list of devices, got {devices!r}")
    if isinstance(devices, (int, np.integer)):
        count = int(devices)
        if count < 1 or count > len(available):
            hint = (" (on a CPU, set XLA_FLAGS=--xla_force_host_platform_device_count=N before "
                    "JAX starts to get N host devices)" if available[0].platform == "cpu"
                    else "")
            choices = "1" if len(available) == 1 else f"a number from 1 to {len(available)}"
            raise ValueError(
                f"resolve_devices: argument `devices` asks for {count} device(s), but "
                f"{len(available)} exist: {_describe(available)}; use {choices} or "
                f"'all'{hint}")
        return list(available[:count])
    if isinstance(devices, Sequence) and devices and all(
            isinstance(d, jax.Device) for d in devices):
        if len(set(devices)) != len(devices):
            raise ValueError(f"resolve_devices: argument `devices` lists a device twice: "
                             f"{_describe(devices)}")
        return list(devices)
    raise ValueError(f"resolve_devices: argument `devices` must be None, 'all', a positive "
                     f"int or a non-empty list of devices, got {devices!r}")


def make_mesh(devices: Devices | Mesh = "all", axis_name: str = "batch") -> Mesh:
    """A 1-D device mesh with one named axis.

    Args:
      devices: anything `resolve_devices` accepts, or a 1-D `Mesh` (returned unchanged).
      axis_name: the name of the mesh axis.

    Returns:
      `Mesh` of shape `[D]` over the resolved devices, axis `axis_name`.
    """
    if isinstance(devices, Mesh):
        if devices.devices.ndim != 1:
            raise ValueError(f"make_mesh: argument `devices` must be a 1-D mesh, got axes "
                             f"{devices.axis_names} of shape {devices.devices.shape}")
        return devices
    return Mesh(np.asarray(resolve_devices(devices), dtype=object), (axis_name,))


def member_sharding(devices: Devices | Mesh, num_members: int,
                    axis_name: str = "members") -> NamedSharding:
    """The sharding of a vmapped run's member axis (seeds x settings) over devices.

    Checked on the host before anything is compiled. Members are never padded: a member
    count that does not divide evenly over the devices is refused.

    Args:
      devices: anything `resolve_devices` accepts (the `--devices` option), or a 1-D `Mesh`.
      num_members: `S`, the length of the leading (member) axis, >= 1.
      axis_name: the mesh axis name (used when `devices` is not a mesh).

    Returns:
      `NamedSharding(mesh, P(axis))`: leading axis split into `D` equal blocks of `S / D`
      members, the other axes whole.

    Raises:
      ValueError: bad `devices` (see `resolve_devices`), `num_members < 1`, or
        `num_members % D != 0`.
    """
    if (not isinstance(num_members, (int, np.integer)) or isinstance(num_members, bool)
            or num_members < 1):
        raise ValueError(f"member_sharding: argument `num_members` must be a positive int, "
                         f"got {num_members!r}")
    mesh = make_mesh(devices, axis_name)
    count = mesh.devices.size
    if num_members % count:
        raise ValueError(
            f"member_sharding: {num_members} members (seeds x settings) do not divide evenly "
            f"over {count} devices; use a multiple of {count} members (e.g. "
            f"{_next_multiple(num_members, count)}) or a number of devices that divides "
            f"{num_members}")
    return NamedSharding(mesh, PartitionSpec(mesh.axis_names[0]))


def shard_leading(tree: ArrayTree, sharding: NamedSharding | Mesh) -> ArrayTree:
    """Places every leaf of `tree` with its leading axis sharded (the same value everywhere).

    Typed PRNG key arrays are handled. With several processes, every process must pass the
    same (global) value; each one keeps only its devices' blocks.

    Args:
      tree: a pytree of arrays whose leaves all have a leading axis `[S, ...]` with `S` a
        multiple of the number of devices.
      sharding: a 1-D `NamedSharding` over the leading axis (from `member_sharding`), or a
        1-D `Mesh` (its axis shards the leading axis).

    Returns:
      The same pytree of `jax.Array`s, each with the leading-axis sharding.

    Raises:
      ValueError: a scalar leaf, or a leading axis that does not divide evenly.
    """
    sharding = _leading_sharding("shard_leading", sharding)
    count = sharding.mesh.devices.size

    def put(path, leaf):
        _check_leading("shard_leading", path, np.shape(leaf), count)
        return _put(leaf, sharding)

    return jax.tree_util.tree_map_with_path(put, tree)


def shard_process_local(tree: ArrayTree, sharding: NamedSharding | Mesh) -> ArrayTree:
    """Builds global arrays from each process's own rows (multi-host data loading).

    Every process passes its block of the leading axis, `[S_local, ...]`, all of the same
    size; the result has `S = S_local * jax.process_count()` rows, process `p`'s block
    placed on process `p`'s devices in the mesh order. With one process this equals
    `shard_leading`. Typed PRNG key arrays are handled.

    Args:
      tree: a pytree of this process's rows, leaves `[S_local, ...]`.
      sharding: a 1-D `NamedSharding` over the leading axis, or a 1-D `Mesh`.

    Returns:
      A pytree of global `jax.Array`s `[S, ...]` sharded along the leading axis.
    """
    sharding = _leading_sharding("shard_process_local", sharding)
    local_count = len(sharding.addressable_devices)

    def put(path, leaf):
        _check_leading("shard_process_local", path, np.shape(leaf), local_count)
        if _is_key(leaf):
            data = jax.make_array_from_process_local_data(
                sharding, _host_value(jax.random.key_data(leaf)))
            return jax.random.wrap_key_data(data, impl=jax.random.key_impl(leaf))
        return jax.make_array_from_process_local_data(sharding, _host_value(leaf))

    return jax.tree_util.tree_map_with_path(put, tree)


def gather_to_host(tree: ArrayTree) -> ArrayTree:
    """The full value of every leaf as NumPy, on every process (sharded or not).

    Arrays spread over several processes are all-gathered
    (`jax.experimental.multihost_utils.process_allgather`); typed PRNG keys come back as
    typed key arrays on the default device.

    Args:
      tree: a pytree of `jax.Array`s (or NumPy arrays).

    Returns:
      The same pytree with NumPy leaves of the global shapes.
    """
    from jax.experimental import multihost_utils

    def get(leaf):
        if _is_key(leaf):
            return jax.random.wrap_key_data(get(jax.random.key_data(leaf)),
                                            impl=jax.random.key_impl(leaf))
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
            return np.asarray(multihost_utils.process_allgather(leaf, tiled=True))
        return np.asarray(jax.device_get(leaf))

    return jax.tree.map(get, tree)


# --------------------------------------------------------------------------------------
# Sharded per-example gradients.
# --------------------------------------------------------------------------------------


def sharded_per_example_grads(
    loss_fn: Callable[..., Array],
    devices: Devices | Mesh = "all",
    in_axes: InAxes = None,
    *,
    has_aux: bool = False,
    structure: values.PerExampleStructure | None = None,
    chunk_size: int | None = None,
    method: str = "auto",
    axis_name: str = "batch",
) -> Callable[..., ArrayTree]:
    """`tdkit.grads.per_example_grads` with the batch axis sharded over devices.

    Each device computes the per-example gradients of its `B / D` examples; `params` (and
    other unbatched arguments) are replicated. Equal to the unsharded function up to float
    tolerance, compiled once per input shape.

    Args:
      loss_fn: `loss_fn(params, *args) -> []`, the loss of ONE example.
      devices: anything `resolve_devices` accepts, or a 1-D `Mesh`.
      in_axes: as in `tdkit.grads.per_example_grads` (default `(None, 0, ..., 0)`: `params`
        shared, the rest batched along axis 0; a `td_loss` needs `(None, None, 0)`).
      has_aux: `loss_fn` returns `(loss, aux)`; `aux` is ignored.
      structure: the `PerExampleStructure` of `loss_fn` (e.g. `loss.structure` of a
        `td_loss`) for the layerwise method, or None (see `tdkit.grads`).
      chunk_size: per device, process the local batch in chunks of this many examples.
      method: `"auto"`, `"layerwise"` or `"vmap"` (see `tdkit.grads`).
      axis_name: the mesh axis name (used when `devices` is not a mesh).

    Returns:
      `fn(params, *args) -> grads`: a pytree like `params` whose leaves have a leading `[B]`
      sharded over the mesh. `fn` raises ValueError (before compiling) when `B` is not a
      multiple of `D`.
    """
    local = lambda axes: tdgrads.per_example_grads(
        loss_fn, axes, has_aux=has_aux, structure=structure, chunk_size=chunk_size,
        method=method)
    return _sharded("sharded_per_example_grads", devices, in_axes, axis_name,
                    local, reduce=False)


def sharded_per_example_grad_norms(
    loss_fn: Callable[..., Array],
    devices: Devices | Mesh = "all",
    in_axes: InAxes = None,
    *,
    has_aux: bool = False,
    structure: values.PerExampleStructure | None = None,
    chunk_size: int | None = None,
    method: str = "auto",
    axis_name: str = "batch",
) -> Callable[..., Array]:
    """`tdkit.grads.per_example_grad_norms` with the batch axis sharded over devices.

    Args:
      loss_fn, devices, in_axes, has_aux, structure, chunk_size, method, axis_name: as in
        `sharded_per_example_grads`.

    Returns:
      `fn(params, *args) -> [B]` float32 norms, sharded over the mesh.
    """
    local = lambda axes: tdgrads.per_example_grad_norms(
        loss_fn, axes, has_aux=has_aux, structure=structure, chunk_size=chunk_size,
        method=method)
    return _sharded("sharded_per_example_grad_norms", devices, in_axes, axis_name,
                    local, reduce=False)


def sharded_clipped_mean_grad(
    loss_fn: Callable[..., Array],
    max_norm: float,
    devices: Devices | Mesh = "all",
    in_axes: InAxes = None,
    *,
    has_aux: bool = False,
    structure: values.PerExampleStructure | None = None,
    chunk_size: int | None = None,
    method: str = "auto",
    axis_name: str = "batch",
) -> Callable[..., ArrayTree]:
    """`tdkit.grads.clipped_mean_grad` with the batch axis sharded over devices.

    Each device averages its `B / D` clipped per-example gradients; `lax.pmean` averages the
    `D` equal-sized blocks, which is the mean over all `B` examples.

    Args:
      loss_fn: `loss_fn(params, *args) -> []`, the loss of ONE example.
      max_norm: the clipping threshold, > 0.
      devices, in_axes, has_aux, structure, chunk_size, method, axis_name: as in
        `sharded_per_example_grads`.

    Returns:
      `fn(params, *args) -> grads`, a pytree like `params`, replicated on every device.
    """
    tdgrads._check_max_norm("sharded_clipped_mean_grad", max_norm)
    local = lambda axes: tdgrads.clipped_mean_grad(
        loss_fn, max_norm, axes, has_aux=has_aux, structure=structure, chunk_size=chunk_size,
        method=method)
    return _sharded("sharded_clipped_mean_grad", devices, in_axes, axis_name,
                    local, reduce=True)


# --------------------------------------------------------------------------------------
# Several hosts.
# --------------------------------------------------------------------------------------


class DistributedInfo(NamedTuple):
    """Where this process stands after `initialize_distributed`.

    Attributes:
      process_index: this process's index, `0 <= process_index < process_count`.
      process_count: the number of processes.
      local_devices: this process's devices.
      devices: the devices of all processes (`jax.devices()`).
    """

    process_index: int
    process_count: int
    local_devices: list[jax.Device]
    devices: list[jax.Device]


def initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    local_device_ids: Sequence[int] | None = None,
    initialization_timeout: int = 300,
) -> DistributedInfo:
    """Joins this process to a multi-process JAX job (`jax.distributed.initialize`).

    Call it first, before any other JAX computation, once in every process (one process per
    host). Arguments not given are read from the environment:
    `TDKIT_COORDINATOR_ADDRESS` (`host:port` of process 0, reachable from every host),
    `TDKIT_NUM_PROCESSES`, `TDKIT_PROCESS_ID` and optionally `TDKIT_LOCAL_DEVICE_IDS`
    (comma-separated). When none of the first three is set anywhere, JAX's own detection is
    used (SLURM, Open MPI, Kubernetes, Cloud TPU, or `JAX_COORDINATOR_ADDRESS` etc.). A
    second call returns the current state without initializing again.

    Args:
      coordinator_address: `host:port` of the coordinator (process 0).
      num_processes: the number of processes, >= 1.
      process_id: this process's index, `0 <= process_id < num_processes`.
      local_device_ids: restrict this process to these local accelerator ids.
      initialization_timeout: seconds to wait for every process to connect.

    Returns:
      A `DistributedInfo`.

    Raises:
      ValueError: only some of address / count / id are set, or a malformed value.
    """
    if not jax.distributed.is_initialized():
        address = coordinator_address or os.environ.get(COORDINATOR_ENV) or None
        count = _int_setting("num_processes", NUM_PROCESSES_ENV, num_processes)
        index = _int_setting("process_id", PROCESS_ID_ENV, process_id)
        if local_device_ids is None and os.environ.get(LOCAL_DEVICE_IDS_ENV):
            text = os.environ[LOCAL_DEVICE_IDS_ENV]
            try:
                local_device_ids = [int(i) for i in text.split(",")]
            except ValueError:
                raise ValueError(f"initialize_distributed: {LOCAL_DEVICE_IDS_ENV} must be "
                                 f"comma-separated ints, got {text!r}") from None
        settings = {"coordinator_address": (address, COORDINATOR_ENV),
                    "num_processes": (count, NUM_PROCESSES_ENV),
                    "process_id": (index, PROCESS_ID_ENV)}
        missing = [f"`{name}` ({env})" for name, (value, env) in settings.items()
                   if value is None]
        if 0 < len(missing) < 3:
            raise ValueError(
                "initialize_distributed: set all of coordinator address, number of processes "
                f"and process id, or none of them (for JAX's auto-detection); missing: "
                f"{', '.join(missing)}")
        if count is not None and count < 1:
            raise ValueError(f"initialize_distributed: `num_processes` must be >= 1, got "
                             f"{count}")
        if count is not None and not 0 <= index < count:
            raise ValueError(f"initialize_distributed: `process_id` must be in [0, {count}), "
                             f"got {index}")
        # Older JAX versions had no CPU collectives by default; multi-process CPU needs gloo.
        if getattr(jax.config, "jax_cpu_collectives_implementation", "gloo") in (None, "none"):
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(
            coordinator_address=address, num_processes=count, process_id=index,
            local_device_ids=local_device_ids, initialization_timeout=initialization_timeout)
    return DistributedInfo(process_index=jax.process_index(),
                           process_count=jax.process_count(),
                           local_devices=list(jax.local_devices()),
                           devices=list(jax.devices()))


# --------------------------------------------------------------------------------------
# Implementation.
# --------------------------------------------------------------------------------------


def _describe(devices: Sequence[jax.Device]) -> str:
    return "[" + ", ".join(f"{d.platform}:{d.id}" for d in devices) + "]"


def _next_multiple(n: int, k: int) -> int:
    return -(-n // k) * k


def _is_key(leaf: Any) -> bool:
    return hasattr(leaf, "dtype") and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def _host_value(leaf: Any) -> np.ndarray:
    if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
        raise ValueError("an array spread over several processes is not a process-local "
                         "value; gather it first (gather_to_host)")
    return np.asarray(leaf)


def _global_put(value: np.ndarray, sharding: NamedSharding) -> jax.Array:
    return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])


def _leading_sharding(fn: str, sharding: NamedSharding | Mesh) -> NamedSharding:
    if isinstance(sharding, Mesh):
        mesh = make_mesh(sharding)
        return NamedSharding(mesh, PartitionSpec(mesh.axis_names[0]))
    if (not isinstance(sharding, NamedSharding) or sharding.mesh.devices.ndim != 1
            or tuple(sharding.spec) != (sharding.mesh.axis_names[0],)):
        raise ValueError(f"{fn}: argument `sharding` must be a 1-D Mesh or a NamedSharding "
                         f"of the leading axis over a 1-D mesh (member_sharding), got "
                         f"{sharding!r}")
    return sharding


def _check_leading(fn: str, path: Any, shape: tuple, count: int) -> None:
    name = jax.tree_util.keystr(path) or "the array"
    if len(shape) == 0:
        raise ValueError(f"{fn}: leaf {name} is a scalar; every leaf needs a leading axis")
    if shape[0] % count:
        raise ValueError(
            f"{fn}: leaf {name} has a leading axis of {shape[0]}, which does not divide "
            f"evenly over {count} devices; use a multiple of {count}")


def _int_setting(name: str, env: str, value: int | None) -> int | None:
    if value is not None:
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise ValueError(f"initialize_distributed: argument `{name}` must be an int, got "
                             f"{value!r}")
        return int(value)
    text = os.environ.get(env)
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"initialize_distributed: {env} must be an int, got {text!r}") from None


def _batch_specs(fn: str, args: tuple, axes: tuple, axis_name: str, count: int,
                 defaulted: bool = False):
    """Per-leaf `PartitionSpec`s of the arguments after params, and the batch size."""
    sizes = set()
    specs = []
    for i, (arg, axis) in enumerate(zip(args, axes, strict=True)):
        if axis is None:
            specs.append(jax.tree.map(lambda _: PartitionSpec(), arg))
            continue

        def spec(leaf, i=i, axis=axis):
            ndim = np.ndim(leaf)
            if not -ndim <= axis < ndim:
                raise ValueError(f"{fn}: argument {i + 1} of the loss (after params) is batched "
                                 f"along axis {axis}, but has a leaf of shape {np.shape(leaf)}")
            position = axis % ndim
            sizes.add(np.shape(leaf)[position])
            return PartitionSpec(*([None] * position), axis_name)

        specs.append(jax.tree.map(spec, arg))
    if len(sizes) != 1:
        hint = (" (the default in_axes batches every argument after params; for a td_loss "
                "pass in_axes=(None, None, 0) so that target_params are shared)"
                if defaulted else "")
        raise ValueError(f"{fn}: batched arguments must share one batch size, got sizes "
                         f"{sorted(sizes)}{hint}")
    batch_size = sizes.pop()
    if batch_size % count:
        raise ValueError(
            f"{fn}: a batch of {batch_size} examples does not divide evenly over {count} "
            f"devices; use a batch size that is a multiple of {count} (e.g. "
            f"{_next_multiple(batch_size, count)}; pad with zero-weight examples if needed)")
    return tuple(specs), batch_size


def _sharded(fn_name: str, devices: Devices | Mesh, in_axes: InAxes, axis_name: str,
             local: Callable, reduce: bool) -> Callable[..., ArrayTree]:
    """Wraps `local(in_axes)`, a `tdkit.grads` function, in a jitted `shard_map`."""
    local(in_axes)  # Checks the options (method, structure, chunk_size) before compiling.
    if not hasattr(jax, "shard_map"):
        raise RuntimeError(f"{fn_name}: needs `jax.shard_map` (JAX >= 0.7); this is JAX "
                           f"{jax.__version__}")
    mesh = make_mesh(devices, axis_name)
    name = mesh.axis_names[0]
    count = mesh.devices.size
    replicated = NamedSharding(mesh, PartitionSpec())

    def core(params, *args):
        axes = tdgrads._resolve_in_axes(fn_name, in_axes, len(args))
        specs, _ = _batch_specs(fn_name, args, axes[1:], name, count, in_axes is None)

        def body(params, *args):
            out = local(axes)(params, *args)
            return jax.lax.pmean(out, name) if reduce else out

        # check_vma=False: a gradient w.r.t. the replicated params stays per-device (the
        # default would psum it across devices, mixing different examples).
        return jax.shard_map(
            body, mesh=mesh, in_specs=(PartitionSpec(),) + specs,
            out_specs=PartitionSpec() if reduce else PartitionSpec(name),
            check_vma=False)(params, *args)

    jitted = jax.jit(core)

    def fn(params: ArrayTree, *args: Any) -> ArrayTree:
        axes = tdgrads._resolve_in_axes(fn_name, in_axes, len(args))
        specs, _ = _batch_specs(fn_name, args, axes[1:], name, count, in_axes is None)
        params = _place(params, lambda _: replicated)
        args = tuple(_place(arg, lambda s: NamedSharding(mesh, s), spec)
                     for arg, spec in zip(args, specs, strict=True))
        return jitted(params, *args)

    return fn


def _place(tree: ArrayTree, make_sharding: Callable, specs: Any = None) -> ArrayTree:
    """Moves leaves onto their target shardings (so committed inputs never conflict)."""
    if specs is None:
        specs = jax.tree.map(lambda _: PartitionSpec(), tree)
    return jax.tree.map(lambda leaf, spec: _put(leaf, make_sharding(spec)), tree, specs)


def _put(leaf: Any, sharding: NamedSharding) -> Any:
    """`leaf` placed with `sharding`; a leaf spread over several processes is left alone."""
    if isinstance(leaf, jax.core.Tracer):  # Inside the caller's jit: shard_map reshards.
        return leaf
    if isinstance(leaf, jax.Array) and leaf.sharding == sharding:
        return leaf
    if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
        return jax.jit(lambda x: x, out_shardings=sharding)(leaf)
    if sharding.is_fully_addressable:
        return jax.device_put(leaf, sharding)
    if _is_key(leaf):
        data = _global_put(_host_value(jax.random.key_data(leaf)), sharding)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(leaf))
    return _global_put(_host_value(leaf), sharding)
