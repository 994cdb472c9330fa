"""The textbook's TD experiments (Sutton & Barto 2018; Boyan 2002) as library code.

    from agents import textbook

    result = textbook.run_experiment("figure-7.2", runs=100, seed=0)   # a JSON-ready dict
    print(textbook.format_table(result))                              # measured vs the book
    textbook.save_result(result, "results/")               # results/figure-7.2.{json,png}

Every sweep over runs and parameters is ONE `jax.jit` of nested `jax.vmap`s: over runs
(each run its own experience, shared by every parameter setting where the book says so) and
over the numeric parameters (`alpha`, `lambda`, `n` are traced values, never recompiled).

Modules:
  results     the result schema (`make_series`, `find_series`)
  report      `format_table`, `plot_result`, `save_result`
  registry    `EXPERIMENTS` (name -> `Experiment`: title, default runs, compute, summary,
              panels), `run_experiment`
  prediction  prediction agents `Predictor(init, update, run)`: TD(lambda), true online
              TD(lambda), n-step TD, lambda-return, MC, off-policy TD, TDC, GTD2, TDRC, ETD,
              LSTD
  streams     experience as streams of episodes (`sample_streams`, `fused_streams`) and
              predictors swept over them (`sweep_predictor`)
  chapter6    Examples 6.2, 6.5, 6.6 and Figure 6.5
  chapter7    Figure 7.2
  chapter10   Figure 10.2
  chapter11   Figures 11.2, 11.5, 11.6 (Baird's counterexample)
  chapter12   Figures 12.3, 12.6, 12.8
  boyan       Boyan's chain: LSTD(0) against the linear TD family

Prediction experiments sample each run's episodes back to back as one stream
(`streams.sample_streams`) processed by a `prediction.Predictor`; control experiments train
`agents` with the library's loops: `agents.jax_loop` for a fixed number of steps,
`agents.episodes.run_episodes` for a fixed number of episodes.
"""

from agents.textbook.registry import EXPERIMENTS, Experiment, Panel, names, run_experiment
from agents.textbook.report import format_table, plot_result, save_result
from agents.textbook.results import PARAM_KEYS, find_series, make_series

__all__ = ["EXPERIMENTS", "Experiment", "PARAM_KEYS", "Panel", "find_series", "format_table",
           "make_series", "names", "plot_result", "run_experiment", "save_result"]
