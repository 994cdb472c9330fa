"""A result's table, figure and files: `format_table`, `plot_result`, `save_result`.

They look the experiment up in `agents.textbook.registry` (its title, the book's published
values and the figure's panels); the schema itself is `agents.textbook.results`.
"""

import json
import pathlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from agents.textbook import registry
from agents.textbook.results import matches


def _experiment(result: Mapping[str, Any]):
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
