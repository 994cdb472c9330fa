#!/usr/bin/env bash
# The GPU checks of issues 3, 5, 7, 13, 14 and 15, as one script for a lent GPU machine
# (about 23 minutes of timeouts: with 15 minutes of device time, run a subset).
#
#   bash scripts/gpu_checks.sh [OUT_DIR]
#
# Expects python3 with jax[cuda], chex, optax, tqdm, orbax-checkpoint and matplotlib, and
# gymnasium importable (on a machine without a registry, install its wheel first). Writes
# the benchmark JSON files and logs into OUT_DIR (default runs/gpu).
set -uo pipefail
out=${1:-runs/gpu}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export XLA_PYTHON_CLIENT_PREALLOCATE=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import jax, gymnasium; print('jax', jax.__version__, jax.devices(), 'gymnasium', gymnasium.__version__)"
nproc; uptime

echo "== per-example gradients (issue 3, 7)"
timeout 150 python3 scripts/bench_per_example.py --device gpu --repeats 20 --loop-repeats 1 \
    --out "$out/bench_per_example_gpu.json" 2>&1 | tee "$out/bench_per_example.log"
echo "== DQN time to solve and host loop (issue 5, 7)"
timeout 170 python3 scripts/bench_dqn.py --device gpu --seeds 3 --host-steps 20000 \
    --out "$out/bench_dqn_gpu.json" 2>&1 | tee "$out/bench_dqn.log"
echo "== one device: gradients up to B = 65536 and many seeds (issue 7)"
timeout 90 python3 scripts/bench_parallel.py --device gpu --devices 1 --seeds 1 16 64 \
    --dqn-steps 20000 --out "$out/bench_parallel_gpu.json" 2>&1 | tee "$out/bench_parallel.log"
echo "== PQN on CartPole and TD3 on the JAX Pendulum, jitted loop (issues 14, 15)"
# the main job (PQN, stops at a greedy 475 on the JAX twin, confirms on 100 Gymnasium
# episodes), cold, whole command; bench_pqn.py needs purejaxql's venv, absent there
start=$(date +%s.%N)
TDKIT_COMPILATION_CACHE=off timeout 150 python3 scripts/train.py --seed 0 --no-progress \
    --out "$out/main_job" 2>&1 | tail -4 | tee "$out/main_job.log"
echo "main job whole command: $(python3 -c 'import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 1))' "$start" "$(date +%s.%N)") s" | tee -a "$out/main_job.log"
timeout 150 python3 scripts/bench_continuous.py --device gpu --parts c --rounds 1 \
    --sbx-venv none --cleanrl-venv none --out "$out/bench_continuous_gpu.json" 2>&1 \
    | tee "$out/bench_continuous.log"
echo "== prioritized replay against uniform (issue 13)"
timeout 60 python3 scripts/bench_replay.py --device gpu --out "$out/bench_replay_gpu.json" \
    2>&1 | tee "$out/bench_replay.log"
echo "== distributional agents against DQN, per step (issue 13)"
timeout 240 python3 scripts/bench_agents.py --device gpu --agents c51 qr_dqn iqn rainbow \
    --seeds 1 --steps 20000 --out "$out/bench_agents_gpu.json" 2>&1 | tee "$out/bench_agents.log"
echo "== the test suite on the GPU"
# "cuda,cpu": the GPU is the default device; host callbacks (debug checks) and the tests
# that ask for CPU devices need JAX's CPU backend too.
JAX_PLATFORMS=cuda,cpu timeout 300 python3 -m pytest -q -p no:cacheprovider -n 8 tests \
    2>&1 | tail -40 | tee "$out/pytest_gpu.log"
