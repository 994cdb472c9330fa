"""XLA compiler options for tdkit's jitted training loop (`--native-cpu-reductions`).

On XLA:CPU (JAX 0.10), YNNPACK fusions take over the reductions of a program (sums, means,
LayerNorm's statistics) as library calls that first write every operand to memory. For
the small programs of the jitted loop that is often slower than XLA's own fused loops:
`python scripts/bench_agents.py --native-cpu-reductions` ran DQN 1.64x and QR-DQN 2.73x as
many steps/s with 1 seed on CartPole-v1 as without, but with 16 seeds C51, M-DQN and
Rainbow 0.81-0.86x (README, Benchmarks). So it is each agent's choice
(`run_defaults["native_cpu_reductions"]` in `agents.registry`: on for QR-DQN and IQN,
which gained with 1 and with 16 seeds), and `--native-cpu-reductions` /
`--no-native-cpu-reductions` override it. It keeps YNNPACK's
matrix products, and it applies only to the CPU backend.

    options = training_compiler_options(native_cpu_reductions=True)   # dict or None
    run = jax.jit(loop_run, compiler_options=options)
"""

import functools
import warnings

import jax
import jax.numpy as jnp

YNN_FUSION_OPTION = "xla_cpu_experimental_ynn_fusion_type"
# XLA's default YNNPACK fusion types on the CPU are individual dots and reductions.
NATIVE_REDUCTIONS = {YNN_FUSION_OPTION: "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}


@functools.cache
def _accepted() -> bool:
    """Whether this jaxlib's XLA knows the option (it is experimental)."""
    try:
        jax.jit(jnp.sum, compiler_options=NATIVE_REDUCTIONS).lower(jnp.ones(2)).compile()
    except Exception:  # an older or newer XLA without the option: INVALID_ARGUMENT
        return False
    return True


def training_compiler_options(native_cpu_reductions: bool) -> dict | None:
    """The `compiler_options` for `jax.jit` of a training program: `NATIVE_REDUCTIONS` when
    asked for, on the CPU backend, with an XLA that accepts them (else a warning); None
    otherwise (XLA's defaults)."""
    if not native_cpu_reductions or jax.default_backend() != "cpu":
        return None
    if not _accepted():
        warnings.warn(f"--native-cpu-reductions: this XLA does not accept "
                      f"{YNN_FUSION_OPTION}; compiling with XLA's defaults", stacklevel=2)
        return None
    return dict(NATIVE_REDUCTIONS)
