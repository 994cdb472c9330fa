"""Metrics sinks: CSV resume, TensorBoard events read back, W&B offline files, and one-line
messages when an optional package is missing."""

import csv
import struct
import sys

import pytest

from agents import loggers

COLUMNS = ["chunk", "member", "seed", "learning_rate", "step", "episodes", "mean_return",
           "mean_length", "loss", "eval_return", "best_eval_return", "seconds",
           "steps_per_second", "wall_time"]


def _rows(chunk, step, returns, evals=("", "")):
    """Two members (seeds 0 and 1) of one configuration."""
    return [{"chunk": chunk, "member": m, "seed": m, "learning_rate": 0.001, "step": step,
             "episodes": 2, "mean_return": r, "mean_length": 9.5, "loss": "",
             "eval_return": e, "best_eval_return": e, "seconds": 1.0,
             "steps_per_second": 100.0, "wall_time": 1_700_000_000.0 + chunk}
            for m, (r, e) in enumerate(zip(returns, evals, strict=True))]


def _read_csv(path):
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_scalars_per_member_and_mean():
    rows = _rows(0, 100, ["10.0", ""], evals=("4", "6"))
    assert loggers.scalars(rows, COLUMNS) == {
        "member_0/episodes": 2.0, "member_0/mean_return": 10.0, "member_0/mean_length": 9.5,
        "member_0/eval_return": 4.0, "member_0/best_eval_return": 4.0,
        "member_0/seconds": 1.0, "member_0/steps_per_second": 100.0,
        "member_1/episodes": 2.0, "member_1/mean_length": 9.5,
        "member_1/eval_return": 6.0, "member_1/best_eval_return": 6.0,
        "member_1/seconds": 1.0, "member_1/steps_per_second": 100.0,
        # Hyperparameters name the configuration; empty cells are skipped, not zeros.
        "mean/learning_rate_0.001/episodes": 2.0, "mean/learning_rate_0.001/mean_return": 10.0,
        "mean/learning_rate_0.001/mean_length": 9.5,
        "mean/learning_rate_0.001/eval_return": 5.0,
        "mean/learning_rate_0.001/best_eval_return": 5.0,
        "mean/learning_rate_0.001/seconds": 1.0,
        "mean/learning_rate_0.001/steps_per_second": 100.0}
    unswept = [c for c in COLUMNS if c != "learning_rate"]
    assert loggers.scalars(rows, unswept)["mean/eval_return"] == 5.0


def test_csv_resume_keeps_the_chunks_of_the_checkpoint(tmp_path):
    path = tmp_path / "metrics.csv"
    writer = loggers.CsvLogger(path, COLUMNS, keep_chunks=None)
    for chunk in range(4):
        writer.log(_rows(chunk, 100 * (chunk + 1), ["1", "2"]), step=100 * (chunk + 1))
    writer.close()
    with path.open("a") as f:  # a crash in the middle of writing a row
        f.write("4,0,0,0.001,500")
    assert len(_read_csv(path)) == 9
    resumed = loggers.CsvLogger(path, COLUMNS, keep_chunks=2)
    assert [(r["chunk"], r["member"]) for r in _read_csv(path)] == [
        ("0", "0"), ("0", "1"), ("1", "0"), ("1", "1")]
    resumed.log(_rows(2, 300, ["7", "8"]), step=300)
    rows = _read_csv(path)
    assert [r["chunk"] for r in rows] == ["0", "0", "1", "1", "2", "2"]
    assert rows[-1]["mean_return"] == "8" and rows[-1]["eval_return"] == ""
    assert path.read_text().splitlines()[0] == ",".join(COLUMNS)
    loggers.CsvLogger(path, COLUMNS, keep_chunks=None)  # a new run: header only
    assert _read_csv(path) == []


def _records(log_dir):
    """Every Event in the TFRecord event files under `log_dir`, file by file."""
    from tensorboardX.proto import event_pb2

    for path in sorted(log_dir.rglob("events.out.tfevents.*")):
        data = path.read_bytes()
        offset = 0
        while offset < len(data):  # record: u64 length, u32 crc, payload, u32 crc
            (length,) = struct.unpack("<Q", data[offset:offset + 8])
            yield event_pb2.Event.FromString(data[offset + 12:offset + 12 + length])
            offset += 12 + length + 4


def _events(log_dir):
    """(tag, step, value) of every scalar under `log_dir`."""
    return [(v.tag, e.step, v.simple_value) for e in _records(log_dir) for v in e.summary.value]


def test_tensorboard_events_read_back(tmp_path):
    pytest.importorskip("tensorboardX")
    logger = loggers.make_loggers(tmp_path, COLUMNS, keep_chunks=None, tensorboard=True)
    logger.log(_rows(0, 100, ["10", "20"], evals=("1", "")), step=100)
    logger.log(_rows(1, 200, ["30", ""]), step=200)
    logger.close()
    events = _events(tmp_path / "tensorboard")
    assert ("member_0/mean_return", 100, 10.0) in events
    assert ("member_1/mean_return", 100, 20.0) in events
    assert ("mean/learning_rate_0.001/mean_return", 100, 15.0) in events
    assert ("mean/learning_rate_0.001/mean_return", 200, 30.0) in events
    assert ("member_0/eval_return", 100, 1.0) in events
    tags = {tag for tag, _, _ in events}
    assert "member_1/eval_return" not in tags and "member_0/loss" not in tags  # all empty
    assert not any(t.endswith(("/seed", "/chunk", "/step", "/wall_time", "/learning_rate"))
                   for t in tags)
    assert (tmp_path / "metrics.csv").is_file() and len(_read_csv(tmp_path / "metrics.csv")) == 4


def test_tensorboard_resume_purges_the_abandoned_steps(tmp_path):
    pytest.importorskip("tensorboardX")
    from tensorboardX.proto import event_pb2

    first = loggers.TensorBoardLogger(tmp_path / "tb", COLUMNS)
    for chunk in range(3):
        first.log(_rows(chunk, 100 * (chunk + 1), ["1", "1"]), step=100 * (chunk + 1))
    first.close()
    resumed = loggers.TensorBoardLogger(tmp_path / "tb", COLUMNS, keep_chunks=1)
    resumed.log(_rows(1, 200, ["5", "5"]), step=200)
    resumed.close()
    # The new file starts with a SessionLog START at step 200: TensorBoard then drops the
    # old file's events at steps >= 200.
    starts = [(e.step, e.session_log.status) for e in _records(tmp_path / "tb")
              if e.HasField("session_log")]
    assert starts == [(200, event_pb2.SessionLog.START)]


def test_wandb_offline_run_writes_under_the_run_dir(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    for name in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_IDENTITY_TOKEN_FILE",
                 "WANDB_BASE_URL", "WANDB_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))  # no credentials anywhere
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))
    assert loggers.wandb_mode() == "offline"
    run_dir = tmp_path / "run"
    logger = loggers.make_loggers(run_dir, COLUMNS, keep_chunks=None, wandb=True,
                                  config={"agent": "dqn", "seeds": 2})
    wandb_logger = logger.loggers[1]
    assert wandb_logger.mode == "offline"
    logger.log(_rows(0, 100, ["10", "20"]), step=100)
    logger.close()
    runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    run_id = (run_dir / "wandb" / "tdkit_run_id").read_text().strip()
    assert list(runs[0].glob(f"run-{run_id}.wandb"))
    assert (run_dir / "metrics.csv").is_file()


def test_wandb_mode_order(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_IDENTITY_TOKEN_FILE", raising=False)
    monkeypatch.delenv("WANDB_BASE_URL", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    netrc = tmp_path / "netrc"
    monkeypatch.setenv("NETRC", str(netrc))
    assert loggers.wandb_mode() == "offline"
    netrc.write_text("machine api.wandb.ai\n  login user\n  password abc123\n")
    netrc.chmod(0o600)
    assert loggers.wandb_mode() == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert loggers.wandb_mode() == "disabled"
    assert loggers.wandb_mode("offline") == "offline"


@pytest.mark.parametrize("flag, module, message", [
    ("tensorboard", "tensorboardX",
     "--tensorboard needs tensorboardX: pip install '.[tensorboard]'"),
    ("wandb", "wandb", "--wandb needs wandb: pip install '.[wandb]'"),
])
def test_missing_package_is_one_line(tmp_path, monkeypatch, flag, module, message):
    monkeypatch.setitem(sys.modules, module, None)  # `import module` raises ImportError
    with pytest.raises(RuntimeError) as error:
        loggers.make_loggers(tmp_path, COLUMNS, keep_chunks=None, **{flag: True})
    assert str(error.value) == message
    assert isinstance(error.value, loggers.MissingDependency) and error.value.code == 2
    assert list(tmp_path.iterdir()) == []  # nothing written before the check
