"""Two processes on loopback cooperate through `jax.distributed` (tdkit.parallel).

Two CPU processes, two forced host devices each, join one job with
`tdkit.parallel.initialize_distributed` (TDKIT_* environment variables, as documented in
docs/scaling.md) and compute on arrays sharded over all four devices
(tests/distributed_worker.py). Expected values are computed here in NumPy by hand: linear
TD(0) per-example gradients `-delta * x_tm1`, their clipped mean, a sum of squares, and the
normals drawn from the same keys on one device.
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from tests import distributed_worker as worker

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_workers(num_processes: int = 2) -> list[tuple[int, str, str]]:
    """Starts the workers, waits up to TIMEOUT_S; returns (exit code, stdout, stderr) each."""
    address = f"127.0.0.1:{free_port()}"
    procs = []
    try:
        for index in range(num_processes):
            env = dict(os.environ)
            env.update({
                "TDKIT_COORDINATOR_ADDRESS": address,
                "TDKIT_NUM_PROCESSES": str(num_processes),
                "TDKIT_PROCESS_ID": str(index),
                "JAX_PLATFORMS": "cpu",
                "XLA_FLAGS": (env.get("XLA_FLAGS", "")
                              + " --xla_force_host_platform_device_count=2").strip(),
            })
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "tests.distributed_worker"], cwd=ROOT, env=env,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        deadline = time.monotonic() + TIMEOUT_S
        results = []
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
            results.append((proc.returncode, stdout, stderr))
        return results
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


def expected_values() -> dict:
    w, w_target, x_tm1, r_t, discount_t, x_t = worker.make_problem()
    delta = r_t + discount_t * (x_t @ w_target) - x_tm1 @ w
    grads = -delta[:, None] * x_tm1
    factors = np.minimum(1.0, worker.MAX_NORM / np.linalg.norm(grads, axis=1))
    keys = jax.random.split(jax.random.key(0), 4)
    return {"grads": grads, "clipped_mean": (factors[:, None] * grads).mean(axis=0),
            "sum_sq": float(np.sum(x_tm1.astype(np.float64) ** 2)),
            "normals": np.asarray([jax.random.normal(k, ()) for k in keys])}


@pytest.mark.slow
def test_two_processes_cooperate_on_one_sharded_computation():
    results = run_workers()
    expected = expected_values()
    seen = set()
    for index, (code, stdout, stderr) in enumerate(results):
        assert code == 0, f"process {index} exited with {code}:\n{stdout}\n{stderr[-4000:]}"
        lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
        assert len(lines) == 1, stdout
        out = json.loads(lines[0][len("RESULT "):])
        seen.add(out["process"])
        np.testing.assert_allclose(out["grads"], expected["grads"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out["clipped_mean"], expected["clipped_mean"], rtol=1e-5,
                                   atol=1e-6)
        np.testing.assert_allclose(out["sum_sq"], expected["sum_sq"], rtol=1e-5)
        np.testing.assert_allclose(out["normals"], expected["normals"], rtol=1e-6)
    assert seen == {0, 1}
