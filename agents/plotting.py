"""Learning curves from a run's metrics.csv: training and greedy evaluation return over
environment steps, one colour per configuration, mean over seeds with a 95% confidence band.

    paths = plot_learning_curve(run_dir / "metrics.csv", run_dir / "learning_curve.png",
                                swept=["learning_rate"], title="dqn on CartPole-v1")
    # [.../learning_curve.png, .../learning_curve.svg, .../learning_curve.pdf], or [] without
    # matplotlib (the optional [plot] extra)

metrics.csv has one row per chunk and member with the columns chunk, member, seed, <swept
hyperparameters>, step, episodes, mean_return, mean_length, loss, eval_return,
best_eval_return, seconds, steps_per_second, wall_time; a return is empty when no episode
ended in that chunk (training) or no evaluation ran (eval_return).
"""

import csv
import math
import pathlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from agents.loggers import swept_columns

FORMATS = ("png", "svg", "pdf")
DPI = 200
FIGSIZE = (8.0, 5.0)  # inches: readable at full column width in a paper
Z_95 = 1.96


class Curve(NamedTuple):
    """One line of the plot: the mean over seeds and its 95% confidence band.

    Attributes:
      steps: [T] environment steps.
      mean: [T] mean over the seeds observed at each step.
      lower, upper: [T] mean -/+ 1.96 standard errors, clipped to the observed return range;
        equal to `mean` where fewer than two seeds were observed.
      seeds: [T] number of seeds observed at each step.
    """

    steps: np.ndarray
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    seeds: np.ndarray


def read_metrics(path: str | pathlib.Path) -> list[dict]:
    """The rows of a metrics.csv as dicts of strings; [] when the file is missing or empty."""
    path = pathlib.Path(path)
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def mean_and_ci(values: np.ndarray, low: float = -math.inf,
                high: float = math.inf) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds and a 95% confidence band (1.96 standard errors), ignoring NaNs.

    Args:
      values: [S, T] one row per seed, NaN where a seed has no value at a step.
      low, high: the observed return range; the band never leaves it.

    Returns:
      (mean, lower, upper, count), each [T]. The standard error uses the sample standard
      deviation (ddof=1); with fewer than two seeds at a step, lower = upper = mean. Steps
      with no value at all have NaN mean and bounds.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"mean_and_ci: expected [S, T] values, got shape {values.shape}")
    count = np.sum(~np.isnan(values), axis=0)
    total = np.nansum(values, axis=0)
    mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    deviation = np.where(np.isnan(values), 0.0, values - mean)
    variance = np.sum(deviation ** 2, axis=0) / np.maximum(count - 1, 1)
    half_width = np.where(count > 1, Z_95 * np.sqrt(variance / np.maximum(count, 1)), 0.0)
    lower = np.clip(mean - half_width, low, high)
    upper = np.clip(mean + half_width, low, high)
    return mean, lower, upper, count


def _number(text: Any) -> float:
    """A finite float, or NaN for an empty, unparsable or infinite cell."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return math.nan
    return value if math.isfinite(value) else math.nan


def learning_curves(rows: Iterable[Mapping[str, Any]], swept: Sequence[str], column: str,
                    low: float = -math.inf, high: float = math.inf) -> dict[str, Curve]:
    """Per configuration (a setting of the `swept` hyperparameters), the mean of `column`
    over seeds at each step with its 95% band; configurations without any value are left
    out. Keys are labels like "learning_rate=0.001" ("" when nothing is swept)."""
    series: dict[str, dict[str, dict[int, float]]] = {}
    for row in rows:
        value, step = _number(row.get(column)), _number(row.get("step"))
        if math.isnan(value) or math.isnan(step):  # no value, or a row cut short by a crash
            continue
        label = ", ".join(f"{name}={row.get(name, '')}" for name in swept)
        by_seed = series.setdefault(label, {})
        by_seed.setdefault(str(row.get("seed", "")), {})[int(step)] = value
    curves = {}
    for label, by_seed in series.items():
        steps = sorted({step for points in by_seed.values() for step in points})
        index = {step: i for i, step in enumerate(steps)}
        values = np.full((len(by_seed), len(steps)), np.nan)
        for s, points in enumerate(by_seed.values()):
            for step, value in points.items():
                values[s, index[step]] = value
        mean, lower, upper, count = mean_and_ci(values, low, high)
        curves[label] = Curve(np.asarray(steps), mean, lower, upper, count)
    return curves


def learning_curve_figure(rows: Sequence[Mapping[str, Any]], swept: Sequence[str] | None = None,
                          title: str = "learning curve"):
    """The matplotlib Figure of the learning curves (training return solid, greedy evaluation
    return dashed, 95% bands shaded), made without pyplot (nothing to close, no backend
    chosen). `swept=None` reads the hyperparameter columns from the rows' keys."""
    import matplotlib  # Lazy: optional [plot] extra.
    from matplotlib.figure import Figure  # no pyplot: no backend switch, no global figures

    rows = list(rows)
    if swept is None:
        swept = swept_columns(rows[0].keys()) if rows else []
    observed = [v for r in rows for v in (_number(r.get("mean_return")),
                                          _number(r.get("eval_return"))) if not math.isnan(v)]
    low, high = (min(observed), max(observed)) if observed else (-math.inf, math.inf)
    training = learning_curves(rows, swept, "mean_return", low, high)
    evaluation = learning_curves(rows, swept, "eval_return", low, high)

    fig = Figure(figsize=FIGSIZE, layout="constrained")
    ax = fig.subplots()
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key().get("color", ["C0"])
    labels = list(dict.fromkeys([*training, *evaluation]))
    for i, label in enumerate(labels):
        color = colors[i % len(colors)]
        prefix = f"{label}: " if label else ""
        for curve, kind, style in ((training.get(label), "training return", "-"),
                                   (evaluation.get(label), "greedy evaluation return", "--")):
            if curve is None:
                continue
            seeds = int(curve.seeds.max())
            ax.plot(curve.steps, curve.mean, style, color=color, linewidth=1.8,
                    label=f"{prefix}{kind} (mean of {seeds} seed{'s' if seeds > 1 else ''})")
            if seeds > 1:
                ax.fill_between(curve.steps, curve.lower, curve.upper, color=color,
                                alpha=0.15 if style == "-" else 0.08, linewidth=0,
                                label=f"{prefix}{kind} 95% CI")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episode return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    handles, names = ax.get_legend_handles_labels()
    if handles:  # below the plot: it never hides a curve
        lines = [i for i, name in enumerate(names) if not name.endswith("95% CI")]
        bands = [i for i, name in enumerate(names) if name.endswith("95% CI")]
        paired = len(bands) == len(lines)  # two columns: each curve beside its band
        order = lines + bands if paired else list(range(len(names)))
        fig.legend([handles[i] for i in order], [names[i] for i in order],
                   loc="outside lower center", ncols=2 if paired else 1, fontsize=8,
                   frameon=False)
    else:  # no episode has ended and nothing was evaluated yet
        ax.text(0.5, 0.5, "no episode has ended yet", transform=ax.transAxes,
                ha="center", va="center", color="gray")
    return fig


def plot_learning_curve(metrics_path: str | pathlib.Path, out_path: str | pathlib.Path,
                        swept: Sequence[str] | None = None,
                        title: str = "learning curve") -> list[pathlib.Path]:
    """Writes the learning curves of a metrics.csv as PNG (at `DPI`), SVG and PDF.

    Args:
      metrics_path: the run's metrics.csv (a missing or empty file gives an empty plot).
      out_path: where the PNG goes; the SVG and PDF get the same name with their suffix.
      swept: the hyperparameter columns that tell configurations apart; None reads them
        from the CSV header (the columns between `seed` and `step`).
      title: the plot title, e.g. "dqn on CartPole-v1".

    Returns:
      The written paths (png, svg, pdf), or [] when matplotlib is not installed.
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return []
    fig = learning_curve_figure(read_metrics(metrics_path), swept, title)
    out_path = pathlib.Path(out_path)
    paths = []
    for fmt in FORMATS:
        path = out_path.with_suffix(f".{fmt}")
        fig.savefig(path, dpi=DPI)
        paths.append(path)
    return paths
