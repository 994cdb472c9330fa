"""Metrics sinks: where a run writes each chunk's rows (one row per member).

Every logger has `log(rows, step)` and `close()`. metrics.csv is always written; TensorBoard
and Weights & Biases are optional extras, imported only when asked for:

    logger = make_loggers(run_dir, columns, keep_chunks=None, tensorboard=True,
                          wandb=False, config=dataclasses.asdict(run_config))
    logger.log(rows, step=env_steps)       # after every chunk
    logger.close()

A row is a dict with the metrics.csv columns: chunk, member, seed, <swept hyperparameters>,
step, episodes, mean_return, mean_length, loss, eval_return, best_eval_return, seconds,
steps_per_second, wall_time. Values may be numbers or strings; "" means "no value this
chunk" (no episode ended, no evaluation ran).

TensorBoard and W&B receive the numeric metric columns as scalars, per member under
`member_<i>/<column>` and averaged over the members of each configuration under
`mean/<column>` (`mean/<name>_<value>/<column>` when hyperparameters are swept).
"""

import csv
import math
import netrc
import os
import pathlib
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

# Columns that say which member, chunk or time a row is about, not how it did.
ID_COLUMNS = ("chunk", "member", "seed", "step", "wall_time")


class MissingDependency(RuntimeError):
    """An optional package needed by a requested logger is not installed. One-line message
    naming the extra to install; `code` = 2 as for other invalid input."""

    code = 2


class MetricsLogger(Protocol):
    """A metrics sink: `log` is called once per chunk with that chunk's rows."""

    def log(self, rows: list[dict], step: int) -> None:
        """Records `rows` (one per member) at `step` environment steps per member."""

    def close(self) -> None:
        """Flushes and releases files; the logger is not used afterwards."""


def swept_columns(columns: Sequence[str]) -> list[str]:
    """The hyperparameter columns of metrics.csv: those between `seed` and `step`."""
    columns = list(columns)
    if "seed" in columns and "step" in columns:
        return columns[columns.index("seed") + 1:columns.index("step")]
    return []


def _number(value: Any) -> float | None:
    """A finite float, or None for "", None, text or inf/nan."""
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _tag_part(text: str) -> str:
    return re.sub(r"[^-\w.]", "_", text)


def scalars(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> dict[str, float]:
    """The scalars of one chunk: {"member_<i>/<column>": value, "mean/<column>": mean over
    members, ...}. Only numeric metric columns (not ID_COLUMNS or swept hyperparameters);
    empty and non-finite values are skipped, and a mean covers the members with a value."""
    swept = swept_columns(columns)
    metrics = [c for c in columns if c not in ID_COLUMNS and c not in swept]
    out: dict[str, float] = {}
    groups: dict[str, dict[str, list[float]]] = {}
    for row in rows:
        config = "-".join(_tag_part(f"{name}_{row.get(name, '')}") for name in swept)
        group = groups.setdefault(f"mean/{config}" if config else "mean", {})
        for column in metrics:
            value = _number(row.get(column))
            if value is None:
                continue
            out[f"member_{row.get('member', 0)}/{column}"] = value
            group.setdefault(column, []).append(value)
    for prefix, values in groups.items():
        for column, seen in values.items():
            out[f"{prefix}/{column}"] = sum(seen) / len(seen)
    return out


class CsvLogger:
    """metrics.csv: a header, then one row per chunk and member, appended (and closed) after
    every chunk so a crash loses nothing written.

    Args:
      path: the CSV file.
      columns: its header.
      keep_chunks: None starts a new file; an int resumes: rows with chunk < keep_chunks are
        kept (the chunks the restored checkpoint covers), later and partly written rows
        dropped, so the file matches the checkpoint.
    """

    def __init__(self, path: str | pathlib.Path, columns: Sequence[str],
                 keep_chunks: int | None):
        self.path = pathlib.Path(path)
        self.columns = list(columns)
        rows = []
        if keep_chunks is not None and self.path.is_file():
            with self.path.open(newline="") as f:
                for row in csv.DictReader(f):
                    chunk = _number(row.get("chunk"))
                    complete = None not in row and None not in row.values()
                    if complete and chunk is not None and chunk < keep_chunks:
                        rows.append(row)
        with self.path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns)
            writer.writeheader()
            writer.writerows(rows)

    def log(self, rows: list[dict], step: int) -> None:
        del step  # each row carries its own
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.columns).writerows(rows)

    def close(self) -> None:
        pass


class TensorBoardLogger:
    """TensorBoard event files in `log_dir` (`tensorboard --logdir RUN_DIR/tensorboard`).

    Args:
      log_dir: folder of the event files (RUN_DIR/tensorboard).
      columns: the metrics.csv columns (to tell metrics from IDs and hyperparameters).
      keep_chunks: None for a new run; an int when resuming, in which case the events of
        the abandoned steps (at or after the first step logged now) are purged.

    Raises:
      MissingDependency: tensorboardX is not installed.
    """

    def __init__(self, log_dir: str | pathlib.Path, columns: Sequence[str],
                 keep_chunks: int | None = None):
        try:
            from tensorboardX import SummaryWriter  # Lazy: optional [tensorboard] extra.
        except ImportError:
            raise MissingDependency(
                "--tensorboard needs tensorboardX: pip install '.[tensorboard]'") from None
        self._summary_writer = SummaryWriter
        self.log_dir = pathlib.Path(log_dir)
        self.columns = list(columns)
        self._resuming = keep_chunks is not None
        self._writer = None

    def log(self, rows: list[dict], step: int) -> None:
        if self._writer is None:  # opened at the first step, which is where a resume purges
            self._writer = self._summary_writer(
                logdir=str(self.log_dir), purge_step=int(step) if self._resuming else None)
        times = [t for t in (_number(r.get("wall_time")) for r in rows) if t is not None]
        walltime = max(times) if times else None
        for tag, value in scalars(rows, self.columns).items():
            self._writer.add_scalar(tag, value, global_step=int(step), walltime=walltime)
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _has_wandb_credentials() -> bool:
    """Whether W&B could log in without a prompt: WANDB_API_KEY, an identity token file,
    or a .netrc entry for the W&B host."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = re.sub(r"^\w+://", "", os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai"))
    host = host.split("/")[0].split(":")[0]
    path = os.environ.get("NETRC") or os.path.join(os.path.expanduser("~"), ".netrc")
    try:
        return netrc.netrc(path).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def wandb_mode(mode: str | None = None) -> str:
    """The W&B mode to use: `mode` if given, else $WANDB_MODE, else "online" when
    credentials are configured and "offline" when not (sync later with `wandb sync`)."""
    if mode:
        return mode
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    return "online" if _has_wandb_credentials() else "offline"


class WandbLogger:
    """A Weights & Biases run whose files live in RUN_DIR/wandb; a resumed tdkit run continues
    the same W&B run (its id is kept in RUN_DIR/wandb/tdkit_run_id). Charts use
    `env_step` (environment steps per member) as their x axis.

    Args:
      run_dir: the run folder.
      columns: the metrics.csv columns.
      config: the run configuration, shown and searchable in W&B.
      mode: "online", "offline" or "disabled"; None chooses with `wandb_mode`.
      project: the W&B project; None uses $WANDB_PROJECT, else "tdkit".

    Raises:
      MissingDependency: wandb is not installed.
    """

    def __init__(self, run_dir: str | pathlib.Path, columns: Sequence[str],
                 config: Mapping[str, Any] | None = None, mode: str | None = None,
                 project: str | None = None):
        try:
            import wandb  # Lazy: optional [wandb] extra.
        except ImportError:
            raise MissingDependency("--wandb needs wandb: pip install '.[wandb]'") from None
        self.run_dir = pathlib.Path(run_dir).absolute()
        self.columns = list(columns)
        (self.run_dir / "wandb").mkdir(parents=True, exist_ok=True)
        id_file = self.run_dir / "wandb" / "tdkit_run_id"
        if id_file.is_file():
            run_id = id_file.read_text().strip()
        else:
            run_id = secrets.token_hex(4)
            id_file.write_text(run_id + "\n")
        self.mode = wandb_mode(mode)
        # wandb takes tdkit's `agents` package for the OpenAI Agents SDK and advertises its
        # LLM tracer (Weave) on every run; nothing here is an LLM call.
        os.environ.setdefault("WANDB_DISABLE_WEAVE", "true")
        self.run = wandb.init(
            project=project or os.environ.get("WANDB_PROJECT") or "tdkit",
            name=self.run_dir.name, id=run_id, resume="allow", dir=str(self.run_dir),
            config=dict(config or {}), mode=self.mode,
            # console="off": leave stdout (the progress bar) alone; quiet: no run summary.
            settings=wandb.Settings(console="off", quiet=True))
        self.run.define_metric("env_step")
        self.run.define_metric("*", step_metric="env_step")

    def log(self, rows: list[dict], step: int) -> None:
        self.run.log({"env_step": int(step), **scalars(rows, self.columns)})

    def close(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None


class MultiLogger:
    """Several loggers as one: each `log` and `close` goes to all of them, in order."""

    def __init__(self, loggers: Sequence[MetricsLogger]):
        self.loggers = list(loggers)

    def log(self, rows: list[dict], step: int) -> None:
        for logger in self.loggers:
            logger.log(rows, step)

    def close(self) -> None:
        errors = []
        for logger in self.loggers:  # close every one, even after a failure
            try:
                logger.close()
            except Exception as error:
                errors.append(error)
        if errors:
            raise errors[0]


def make_loggers(run_dir: str | pathlib.Path, columns: Sequence[str],
                 keep_chunks: int | None, tensorboard: bool = False, wandb: bool = False,
                 config: Mapping[str, Any] | None = None) -> MultiLogger:
    """The loggers of a run: RUN_DIR/metrics.csv always, RUN_DIR/tensorboard and W&B (files
    in RUN_DIR/wandb) when asked for.

    Args:
      run_dir: the run folder.
      columns: the metrics.csv header.
      keep_chunks: None for a new run; the number of chunks the restored checkpoint covers
        when resuming (see `CsvLogger`).
      tensorboard, wandb: whether to add those loggers.
      config: the run configuration (for W&B).

    Raises:
      MissingDependency: a requested logger's package is missing (checked before any
        file is touched).
    """
    run_dir = pathlib.Path(run_dir)
    extra: list[MetricsLogger] = []
    try:
        if tensorboard:
            extra.append(TensorBoardLogger(run_dir / "tensorboard", columns, keep_chunks))
        if wandb:
            extra.append(WandbLogger(run_dir, columns, config))
    except BaseException:
        MultiLogger(extra).close()
        raise
    return MultiLogger([CsvLogger(run_dir / "metrics.csv", columns, keep_chunks), *extra])
