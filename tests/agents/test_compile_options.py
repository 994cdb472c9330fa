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


def _plan(**kwargs):
    from agents import plan as plan_lib
    return plan_lib.Plan(run_lib.RunConfig(env="CartPole-v1", **kwargs))


def test_the_option_defaults_to_the_agents_own_choice_on_the_jitted_loop():
    from agents import registry
    assert set(registry.NATIVE_CPU_REDUCTIONS_BY_DEFAULT) == {"qr_dqn", "iqn"}
    for agent in ("dqn", "double_dqn", "c51", "qr_dqn", "iqn", "mdqn", "rainbow", "pqn"):
        plan = _plan(agent=agent, backend="jax")
        assert plan.native_cpu_reductions is (agent in ("qr_dqn", "iqn")), agent
        assert plan.resolved_config()["native_cpu_reductions"] is plan.native_cpu_reductions
    # Explicit choices win, both ways.
    assert _plan(agent="qr_dqn", backend="jax", native_cpu_reductions=False
                 ).native_cpu_reductions is False
    assert _plan(agent="dqn", backend="jax", native_cpu_reductions=True).native_cpu_reductions
    # The host loop has no such program: an agent's default is not an error there.
    assert _plan(agent="qr_dqn", backend="gym").native_cpu_reductions is False


def test_the_cli_leaves_the_choice_to_the_agent_unless_told(tmp_path):
    parse = cli.build_train_parser("qr_dqn").parse_args
    assert cli.config_from_args(parse(["--agent", "qr_dqn"])).native_cpu_reductions is None
    assert cli.config_from_args(parse(
        ["--agent", "qr_dqn", "--no-native-cpu-reductions"])).native_cpu_reductions is False


def test_the_jitted_loop_compiles_with_the_resolved_choice(monkeypatch):
    from agents import backends
    seen = []

    def record(native_cpu_reductions):
        seen.append(native_cpu_reductions)
        return None

    monkeypatch.setattr(backends, "training_compiler_options", record)
    for agent, given in (("qr_dqn", None), ("dqn", None), ("iqn", False)):
        run_lib.make_backend(_plan(agent=agent, backend="jax", native_cpu_reductions=given))
    assert seen == [True, False, False]
