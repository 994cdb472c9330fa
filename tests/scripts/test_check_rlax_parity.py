"""The signature comparison of scripts/check_rlax_parity.py, on tiny fake modules (no rlax)."""

import functools
import importlib.util
import math
import pathlib
import types

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "check_rlax_parity.py"


def load_script():
    spec = importlib.util.spec_from_file_location("check_rlax_parity_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


parity = load_script()


def _fake(name, **functions):
    module = types.ModuleType(name)
    for fn_name, fn in functions.items():
        setattr(module, fn_name, fn)
    module.__all__ = list(functions)
    return module


def _rlax_like():
    def same(x, y, scale=1.0, stop_target_gradients=True):
        return x

    def returns(r_t, v_t, stop_target_gradients=False):
        return r_t

    def renamed(q_tm1, a_tm1):
        return q_tm1

    def reordered(a, b, c=None):
        return a

    def new_default(x, delta=1.0):
        return x

    def only_in_rlax(x):
        return x

    return _fake("rlax_like", same=same, returns=returns, renamed=renamed, reordered=reordered,
                 new_default=new_default, only_in_rlax=only_in_rlax)


def _tdkit_like():
    def same(x, y, scale=1.0, stop_target_gradients=True):
        return x

    def returns(r_t, v_t, stop_target_gradients=True):
        return r_t

    def renamed(q_tm1, action):
        return q_tm1

    def reordered(b, a, c=None):
        return a

    def new_default(x, delta=2.0):
        return x

    def only_in_tdkit(x):
        return x

    return _fake("tdkit_like", same=same, returns=returns, renamed=renamed, reordered=reordered,
                 new_default=new_default, only_in_tdkit=only_in_tdkit)


def test_signature_comparison_on_fake_modules():
    theirs, ours = _rlax_like(), _tdkit_like()
    found = parity.find_counterparts(theirs.__all__, [("tdkit_like", ours)])
    assert sorted(found) == ["new_default", "renamed", "reordered", "returns", "same"]
    status = {name: parity.signature_difference(
        parity.signature_record(getattr(theirs, name)), parity.signature_record(fn))
        for name, (_, fn, _) in found.items()}
    assert status["same"] == ("equal", "")
    assert status["returns"] == (
        "documented", "stop_target_gradients: default rlax False / tdkit True")
    assert status["renamed"] == ("differs", "tdkit lacks a_tm1; tdkit adds action")
    assert status["reordered"] == ("differs", "order: rlax a, b, c / tdkit b, a, c")
    assert status["new_default"] == ("differs", "delta: default rlax 1.0 / tdkit 2.0")


def test_fallback_namespaces_are_flagged_not_exported():
    ours = _tdkit_like()
    hidden = _fake("tdkit_like.sub", only_in_rlax=lambda x: x)
    found = parity.find_counterparts(["same", "only_in_rlax"], [("tdkit_like", ours)],
                                     [("tdkit_like.sub", hidden)])
    assert found["same"][0] == "tdkit_like" and found["same"][2] is True
    assert found["only_in_rlax"][0] == "tdkit_like.sub" and found["only_in_rlax"][2] is False
    assert parity.find_counterparts(["only_in_rlax"], [("tdkit_like", ours)]) == {}


def test_records_see_through_wrappers_and_describe_defaults():
    def build(r_t, v_t, lambda_=1.0):
        return r_t

    @functools.wraps(build)
    def transformed(tx_pair, *args, **kwargs):
        return build(*args, **kwargs)

    assert parity.format_signature(parity.signature_record(transformed)) == (
        "(tx_pair, r_t, v_t, lambda_=1.0)")

    def clip(x, gradient_min, gradient_max):
        return x

    def hidden(*args, **kwargs):  # A decorator that keeps `clip` only in its closure.
        return clip(*args, **kwargs)

    assert [p[0] for p in parity.signature_record(hidden, "clip")] == [
        "x", "gradient_min", "gradient_max"]
    assert parity.describe_default(np.float32) == "float32"
    assert parity.describe_default(parity.Ref("P")) == "Ref('P')"


def test_max_diff():
    assert parity.max_diff([np.array([1.0, 2.0])], [np.array([1.0, 2.5])]) == (0.5, 2.5)
    assert parity.max_diff([np.array([np.inf])], [np.array([np.inf])]) == (0.0, 1.0)
    assert math.isnan(parity.max_diff([np.array([np.nan])], [np.array([1.0])])[0])
    assert math.isnan(parity.max_diff([np.ones(2)], [np.ones(3)])[0])
    assert math.isnan(parity.max_diff([np.ones(2)], [np.ones(2), np.ones(2)])[0])
