"""agents.compile_options: the jitted loop's opt-in XLA:CPU option (`--native-cpu-reductions`)
keeps reductions out of YNNPACK fusions, and the run trains with it."""

import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from agents import cli, compile_options
from agents import run as run_lib


def _layer_norm_stats(x):  # the kind of reduction every LayerNorm network has
    return jnp.sum(x * x, axis=-1) + jnp.sum(x, axis=-1)


def _ynn_reductions(options) -> int:
    x = jnp.ones((128, 120))
    text = jax.jit(_layer_norm_stats, compiler_options=options).lower(x).compile().as_text()
    return sum(1 for line in text.splitlines()
               if '"kind":"__ynn_fusion"' in line and re.search(r'op_name="[^"]*reduce', line))


def test_options_are_none_unless_asked_for_on_the_cpu(monkeypatch):
    assert compile_options.training_compiler_options(False) is None
    monkeypatch.setattr(compile_options.jax, "default_backend", lambda: "gpu")
    assert compile_options.training_compiler_options(True) is None


def test_options_take_reductions_out_of_ynnpack():
    # The jaxlib the test extra installs must accept the option; if a release drops it,
    # --native-cpu-reductions has silently become XLA's defaults and this should fail.
    assert compile_options._accepted()
    options = compile_options.training_compiler_options(True)
    assert options == compile_options.NATIVE_REDUCTIONS
    assert _ynn_reductions(None) > 0  # XLA's default: YNNPACK takes the reductions
    assert _ynn_reductions(options) == 0
    x = jnp.asarray(np.random.default_rng(0).normal(size=(128, 120)), jnp.float32)
    np.testing.assert_allclose(jax.jit(_layer_norm_stats, compiler_options=options)(x),
                               _layer_norm_stats(x), rtol=1e-5)


def test_an_xla_without_the_option_warns_and_uses_the_defaults(monkeypatch):
    monkeypatch.setattr(compile_options, "_accepted", lambda: False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert compile_options.training_compiler_options(True) is None
    assert any("does not accept" in str(w.message) for w in caught)


def test_the_jitted_loop_trains_with_the_option(tmp_path):
    config = cli.config_from_args(cli.build_train_parser("qr_dqn").parse_args(
        ["--agent", "qr_dqn", "--native-cpu-reductions", "--total-steps", "600",
         "--chunk-steps", "300", "--num-envs", "2", "--eval-episodes", "1",
         "--stop-at-return", "none", "--learning-starts", "64", "--batch-size", "16",
         "--out", str(tmp_path / "run")]))
    assert config.native_cpu_reductions
    summary = run_lib.train(config, progress=False)
    assert summary["backend"] == "jax" and summary["chunks_done"] == 2
    rows = run_lib.read_metrics(tmp_path / "run" / "metrics.csv")
    assert all(np.isfinite(float(r["loss"])) for r in rows)
