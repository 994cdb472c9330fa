"""Every reproducible experiment by CLI name: what it computes, what the book reports, its plot.

`EXPERIMENTS` maps a name ("figure-7.2") to an `Experiment`; `run_experiment(name, runs,
seed)` computes its JSON-ready result (`agents.textbook.results`). Default run counts are
the book's; the setups and published values are those of Sutton & Barto (2018) as
summarised in `shared/reference/sutton_barto.md`.
"""

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax

from agents.textbook import boyan, chapter6, chapter7, chapter10, chapter11, chapter12

Array = jax.Array


class Panel(NamedTuple):
    """One subplot: the series whose params contain `select`, with axis labels and scales."""

    title: str
    xlabel: str
    ylabel: str
    select: Mapping[str, Any] = {}
    yscale: str = "linear"
    ylim: tuple[float, float] | None = None
    hline: float | None = None


class Experiment(NamedTuple):
    """A reproducible experiment.

    Attributes:
      name: the CLI name, e.g. "figure-7.2".
      title: what it reproduces.
      default_runs: the book's number of runs (1 for its single-run figures); where the
        source states none, 200 (the cliff) and 100 (Boyan's chain).
      compute: `compute(key, runs) -> list of series`.
      summary: `summary(result) -> [(quantity, measured, book), ...]` for the table.
      panels: the plot's subplots.
    """

    name: str
    title: str
    default_runs: int
    compute: Callable[[Array, int], list]
    summary: Callable[[Mapping[str, Any]], list]
    panels: tuple


def _lambda_panel(title: str) -> tuple:
    return (Panel(title, "alpha", "average RMS error over 19 states and first 10 episodes",
                  ylim=(0.25, 0.55)),)


def _baird_panels(methods: Sequence[tuple[str, str]], ylabel: str) -> tuple:
    return tuple(Panel(title, "steps" if "expected" not in m and m != "semi_gradient_dp"
                       else "sweeps", ylabel, select={"method": m}) for m, title in methods)


EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (
    Experiment("example-6.2", "Example 6.2: TD(0) vs constant-alpha MC, 5-state random walk",
               100, chapter6.example_6_2, chapter6.summary_6_2,
               (Panel("Empirical RMS error, averaged over states", "walks / episodes",
                      "RMS error"),)),
    Experiment("figure-7.2", "Figure 7.2: n-step TD on the 19-state random walk", 100,
               chapter7.figure_7_2, chapter7.summary_7_2,
               (Panel("n-step TD", "alpha",
                      "average RMS error over 19 states and first 10 episodes",
                      ylim=(0.25, 0.55)),)),
    Experiment("figure-12.3", "Figure 12.3: off-line lambda-return algorithm, 19-state walk",
               100, chapter12.figure_12_3, chapter12.summary_12_3,
               _lambda_panel("Off-line lambda-return algorithm")),
    Experiment("figure-12.6", "Figure 12.6: TD(lambda), 19-state random walk", 100,
               chapter12.figure_12_6, chapter12.summary_12_6, _lambda_panel("TD(lambda)")),
    Experiment("figure-12.8", "Figure 12.8: true online TD(lambda), 19-state random walk",
               100, chapter12.figure_12_8, chapter12.summary_12_8,
               _lambda_panel("True online TD(lambda)")),
    Experiment("example-6.5", "Example 6.5: Sarsa on the windy gridworld",
               1, chapter6.example_6_5, chapter6.summary_6_5,
               (Panel("Windy gridworld, Sarsa", "time steps", "episodes"),)),
    Experiment("example-6.6", "Example 6.6: Sarsa vs Q-learning on the cliff",
               200, chapter6.example_6_6, chapter6.summary_6_6,
               (Panel("Cliff walking", "episodes", "sum of rewards during episode",
                      ylim=(-100.0, 0.0)),)),
    Experiment("figure-6.5", "Figure 6.5: maximization bias, Q-learning vs Double Q-learning",
               10_000, chapter6.figure_6_5, chapter6.summary_figure_6_5,
               (Panel("Maximization bias", "episodes", "% left actions from A",
                      ylim=(0.0, 100.0), hline=5.0),)),
    Experiment("figure-11.2", "Figure 11.2: Baird's counterexample, semi-gradient TD and DP",
               1, chapter11.figure_11_2, chapter11.summary_11_2,
               _baird_panels([("td", "Semi-gradient off-policy TD"),
                              ("semi_gradient_dp", "Semi-gradient DP")], "weights")),
    Experiment("figure-11.5", "Figure 11.5: TDC on Baird's counterexample", 1,
               chapter11.figure_11_5, chapter11.summary_11_5,
               _baird_panels([("tdc", "TDC"), ("expected_tdc", "Expected TDC")],
                             "weights, sqrt(VE), sqrt(PBE)")),
    Experiment("figure-11.6", "Figure 11.6: expected emphatic TD on Baird's counterexample",
               1, chapter11.figure_11_6, chapter11.summary_11_6,
               _baird_panels([("expected_etd", "Emphatic-TD")], "weights, sqrt(VE)")),
    Experiment("figure-10.2", "Figure 10.2: Mountain Car, semi-gradient Sarsa, tile coding",
               100, chapter10.figure_10_2, chapter10.summary_10_2,
               (Panel("Mountain Car", "episode", "steps per episode (log scale)",
                      yscale="log"),)),
    Experiment("boyan-lstd", "Boyan's chain: LSTD(0) vs TD(0), TDC, GTD2, TDRC, ETD(0)", 100,
               boyan.boyan_lstd, boyan.summary_boyan,
               (Panel("Boyan chain", "episodes", "RMS value error", yscale="log"),)),
)}
"""Every experiment by CLI name, in the order `all` runs them."""


def names() -> list[str]:
    """The experiments' CLI names, in the order `all` runs them."""
    return list(EXPERIMENTS)


def run_experiment(name: str, runs: int | None = None, seed: int = 0) -> dict:
    """Runs experiment `name` and returns its JSON-ready result.

    Args:
      name: a key of `EXPERIMENTS`.
      runs: number of independent runs (default: the book's).
      seed: PRNG seed.

    Returns:
      `{"experiment", "runs", "seconds", "series"}`; `seconds` includes compilation.
    """
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; valid: {', '.join(EXPERIMENTS)}")
    experiment = EXPERIMENTS[name]
    runs = experiment.default_runs if runs is None else runs
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        raise ValueError(f"`runs` must be a positive int, got {runs!r}")
    start = time.perf_counter()
    series = experiment.compute(jax.random.key(seed), runs)
    return {"experiment": name, "runs": runs, "seconds": time.perf_counter() - start,
            "series": series}
