"""The result schema of the reproductions (its table, figure and files: `agents.textbook.report`).

A result is the JSON-ready dict

    {"experiment": str,      # the CLI name, e.g. "figure-7.2"
     "runs": int,            # independent runs averaged over
     "seconds": float,       # wall time of the computation, compilation included
     "series": [             # one entry per curve of the book's figure
         {"label": str,      # the legend entry, e.g. "n=4"
          "params": {...},   # the swept values, keys among PARAM_KEYS
          "x": [float, ...], # what the book's x axis shows (alpha, episodes, steps, sweeps)
          "y": [float | null, ...]},   # what its y axis shows, averaged over runs
         ...]}

`params` holds the swept values under the keys `n`, `lambda`, `alpha`, `method` and, for
the Baird and Boyan figures, `quantity` ("w1".."w8", "VE", "PBE", "rmse"). Non-finite
values (a diverged setting) are written as `null`, so the files are strict JSON.

"""

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

PARAM_KEYS = ("n", "lambda", "alpha", "method", "quantity")
"""The keys a series' `params` may hold (the swept values)."""


def _floats(values: Any) -> list:
    """A flat list of Python floats, non-finite values as None (valid JSON)."""
    out = []
    for v in np.asarray(values, np.float64).reshape(-1).tolist():
        out.append(v if math.isfinite(v) else None)
    return out


def make_series(label: str, params: Mapping[str, Any], x: Any, y: Any) -> dict:
    """One curve: `{"label", "params", "x", "y"}` with `x`, `y` as lists of floats.

    `params` may only use the keys `PARAM_KEYS`; ValueError otherwise.
    """
    unknown = sorted(set(params) - set(PARAM_KEYS))
    if unknown:
        raise ValueError(f"make_series: params keys {unknown} are not among {PARAM_KEYS}")
    x, y = _floats(x), _floats(y)
    if len(x) != len(y):
        raise ValueError(f"make_series: `x` and `y` must have the same length, got {len(x)} "
                         f"and {len(y)} for {label!r}")
    clean = {k: (float(v) if isinstance(v, (float, np.floating)) else
                 int(v) if isinstance(v, (int, np.integer)) else v) for k, v in params.items()}
    return {"label": label, "params": clean, "x": x, "y": y}


def find_series(result: Mapping[str, Any], **params: Any) -> dict:
    """The unique series whose `params` contain every given `key=value`; ValueError otherwise."""
    found = [s for s in result["series"] if matches(s, params)]
    if len(found) != 1:
        raise ValueError(f"find_series: {len(found)} series match {params} in "
                         f"{result['experiment']}")
    return found[0]


def matches(series: Mapping[str, Any], params: Mapping[str, Any]) -> bool:
    """Whether `series["params"]` holds every `key: value` of `params` (floats to 1e-9)."""
    return all(_same(series["params"].get(k), v) for k, v in params.items())


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and abs(float(a) - float(b)) < 1e-9
    return a == b


# ----------------------------------------------------------------------------------------
# Helpers of the chapters' summaries (`Experiment.summary`).
# ----------------------------------------------------------------------------------------


def fmt(v: float | None, digits: int = 3) -> str:
    """`v` with `digits` significant digits; "nan" for None or a non-finite value."""
    return "nan" if v is None or not math.isfinite(v) else f"{v:.{digits}g}"


def argmin(series: Mapping[str, Any]) -> tuple[float, float]:
    """`(x, y)` of the smallest `y` of a series (null counts as +inf)."""
    ys = np.array([np.inf if y is None else y for y in series["y"]])
    i = int(np.argmin(ys))
    return series["x"][i], float(ys[i])


# ----------------------------------------------------------------------------------------
# Table, figure, files.
# ----------------------------------------------------------------------------------------
