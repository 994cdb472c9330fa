"""Learning curves: files in three formats, 95% bands (hand-computed, clipped), eval lines."""

import csv
import math
import sys
import warnings

import numpy as np
import pytest

from agents import plotting

pytest.importorskip("matplotlib")

COLUMNS = ["chunk", "member", "seed", "learning_rate", "step", "episodes", "mean_return",
           "mean_length", "loss", "eval_return", "best_eval_return", "seconds",
           "steps_per_second", "wall_time"]


def _row(chunk, member, seed, lr, step, mean_return, eval_return=""):
    return {"chunk": chunk, "member": member, "seed": seed, "learning_rate": lr, "step": step,
            "episodes": 3, "mean_return": mean_return, "mean_length": 10.0, "loss": 0.1,
            "eval_return": eval_return, "best_eval_return": eval_return, "seconds": 1.0,
            "steps_per_second": 100.0, "wall_time": 0.0}


def _write(path, rows):
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _two_seeds():
    """One configuration, seeds 0 and 1, two chunks; evaluation returns on both."""
    return [_row(0, 0, 0, 0.001, 100, 10.0, 20.0), _row(0, 1, 1, 0.001, 100, 30.0, 40.0),
            _row(1, 0, 0, 0.001, 200, 50.0, 60.0), _row(1, 1, 1, 0.001, 200, 70.0, 100.0)]


def test_mean_and_ci_by_hand():
    values = np.array([[10.0, 1.0, np.nan], [30.0, np.nan, np.nan]])
    mean, lower, upper, count = plotting.mean_and_ci(values)
    # Step 0: mean 20, sample std sqrt(200) = 14.142, sem = 10, band 20 -/+ 19.6.
    np.testing.assert_allclose([mean[0], lower[0], upper[0]], [20.0, 0.4, 39.6])
    # Step 1: one seed, no band. Step 2: no value at all.
    np.testing.assert_allclose([mean[1], lower[1], upper[1]], [1.0, 1.0, 1.0])
    assert np.isnan(mean[2]) and count.tolist() == [2, 1, 0]


def test_band_is_clipped_to_the_observed_range():
    values = np.array([[10.0, 0.0], [30.0, 500.0]])
    _, lower, upper, _ = plotting.mean_and_ci(values, low=0.0, high=500.0)
    # Unclipped: 250 -/+ 1.96 * 250 = [-240, 740].
    np.testing.assert_allclose([lower[1], upper[1]], [0.0, 500.0])
    np.testing.assert_allclose([lower[0], upper[0]], [0.4, 39.6])


def test_figure_has_training_and_eval_lines_with_labelled_bands():
    fig = plotting.learning_curve_figure(_two_seeds(), ["learning_rate"], "dqn on Test")
    ax = fig.axes[0]
    labels = ax.get_legend_handles_labels()[1]
    assert labels == [
        "learning_rate=0.001: training return (mean of 2 seeds)",
        "learning_rate=0.001: training return 95% CI",
        "learning_rate=0.001: greedy evaluation return (mean of 2 seeds)",
        "learning_rate=0.001: greedy evaluation return 95% CI"]
    assert ax.get_title() == "dqn on Test"
    assert ax.get_xlabel() == "environment steps" and ax.get_ylabel() == "episode return"
    train, evaluation = ax.get_lines()
    np.testing.assert_allclose(train.get_ydata(), [20.0, 60.0])
    np.testing.assert_allclose(evaluation.get_ydata(), [30.0, 80.0])
    # Bands (PolyCollections) stay inside the observed returns [10, 100]: unclipped, the
    # training band at step 100 would be 20 -/+ 19.6 and the eval one at 200 reach 107.
    ys = np.concatenate([c.get_paths()[0].vertices[:, 1] for c in ax.collections])
    assert ys.min() >= 10.0 and ys.max() <= 100.0
    assert math.isclose(ys.max(), 100.0) and math.isclose(ys.min(), 10.0)


def test_one_seed_has_no_band_and_empty_eval_is_skipped():
    rows = [_row(0, 0, 0, 0.1, 100, 5.0), _row(1, 0, 0, 0.1, 200, ""),
            _row(2, 0, 0, 0.1, 300, 7.0)]
    ax = plotting.learning_curve_figure(rows, ["learning_rate"]).axes[0]
    assert ax.get_legend_handles_labels()[1] == [
        "learning_rate=0.1: training return (mean of 1 seed)"]
    assert not ax.collections
    np.testing.assert_allclose(ax.get_lines()[0].get_xdata(), [100, 300])


def test_writes_png_svg_pdf_at_paper_resolution(tmp_path):
    metrics = _write(tmp_path / "metrics.csv", _two_seeds())
    paths = plotting.plot_learning_curve(metrics, tmp_path / "learning_curve.png",
                                         title="dqn on Test")  # swept read from the header
    assert [p.name for p in paths] == ["learning_curve.png", "learning_curve.svg",
                                       "learning_curve.pdf"]
    assert all(p.is_file() and p.stat().st_size > 1000 for p in paths)
    from matplotlib import image

    height, width = image.imread(paths[0]).shape[:2]
    assert plotting.DPI >= 150
    assert (width, height) == (round(plotting.FIGSIZE[0] * plotting.DPI),
                               round(plotting.FIGSIZE[1] * plotting.DPI))
    PIL = pytest.importorskip("PIL.Image")
    with PIL.open(paths[0]) as png:
        assert round(png.info["dpi"][0]) >= 150
    assert "95% CI" in paths[1].read_text()


@pytest.mark.parametrize("content", ["", ",".join(COLUMNS) + "\n", None])
def test_empty_metrics_give_an_empty_plot_without_warnings(tmp_path, content):
    metrics = tmp_path / "metrics.csv"
    if content is not None:
        metrics.write_text(content)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "No artists with labels found to put in legend"
        paths = plotting.plot_learning_curve(metrics, tmp_path / "learning_curve.png",
                                             ["learning_rate"], "nothing yet")
    assert len(paths) == 3 and all(p.is_file() for p in paths)


def test_without_matplotlib_nothing_is_written(tmp_path, monkeypatch):
    metrics = _write(tmp_path / "metrics.csv", _two_seeds())
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert plotting.plot_learning_curve(metrics, tmp_path / "learning_curve.png") == []
    assert not list(tmp_path.glob("learning_curve.*"))
