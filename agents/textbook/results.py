"""The result schema of the reproductions, its table, its figure and its files.

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

`format_table` and `plot_result` look the experiment up in `agents.textbook.registry` (its
title, the book's published values and the figure's panels).
"""

import json
import math
import pathlib
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


def _experiment(result: Mapping[str, Any]):
    from agents.textbook import registry  # the registry imports the chapters, which import us

    return registry.EXPERIMENTS[result["experiment"]]


def format_table(result: Mapping[str, Any]) -> str:
    """A short plain-text table: what was measured next to what the book reports."""
    experiment = _experiment(result)
    rows = experiment.summary(result)
    header = ("quantity", "measured", "book")
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(2)]
    lines = [f"{experiment.title} (runs: {result['runs']}, "
             f"{result['seconds']:.1f} s including compilation)",
             f"  {header[0]:<{widths[0]}}  {header[1]:<{widths[1]}}  {header[2]}"]
    lines += [f"  {q:<{widths[0]}}  {m:<{widths[1]}}  {b}" for q, m, b in rows]
    return "\n".join(lines)


def plot_result(result: Mapping[str, Any], path: str | pathlib.Path) -> None:
    """Draws the experiment's figure (matplotlib, imported here) and saves it to `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    experiment = _experiment(result)
    panels = experiment.panels
    fig, axes = plt.subplots(1, len(panels), figsize=(6.4 * len(panels), 4.8), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        for s in result["series"]:
            if not matches(s, panel.select):
                continue
            x = np.array(s["x"], np.float64)
            y = np.array([np.nan if v is None else v for v in s["y"]], np.float64)
            style = "--" if s["params"].get("method") == "MC" else "-"
            label = s["label"]
            for prefix in ("Expected TDC ", "Expected ETD ", "TDC ", "TD ", "DP "):
                if label.startswith(prefix) and panel.select:
                    label = label[len(prefix):]
            ax.plot(x, y, style, label=label, linewidth=1.2)
        if panel.hline is not None:
            ax.axhline(panel.hline, color="grey", linestyle=":", label="optimal")
        ax.set_title(panel.title)
        ax.set_xlabel(panel.xlabel)
        ax.set_ylabel(panel.ylabel)
        ax.set_yscale(panel.yscale)
        if panel.ylim is not None:
            ax.set_ylim(*panel.ylim)
        ax.legend(fontsize="small")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{experiment.title} (runs: {result['runs']})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def save_result(result: Mapping[str, Any], out_dir: str | pathlib.Path,
                plot: bool = True) -> dict[str, pathlib.Path]:
    """Writes `out_dir/<experiment>.json` (strict JSON) and, if `plot`, `<experiment>.png`.

    Returns:
      `{"json": path, "png": path}` (no "png" without `plot`).
    """
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / f"{result['experiment']}.json"}
    paths["json"].write_text(json.dumps(result, indent=1, allow_nan=False) + "\n")
    if plot:
        paths["png"] = out / f"{result['experiment']}.png"
        plot_result(result, paths["png"])
    return paths
