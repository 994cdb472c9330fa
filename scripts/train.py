"""Train a tdkit agent and evaluate it on Gymnasium. With no arguments: the main job, PQN on
CartPole-v1 trained on tdkit's JAX twin, then 100 greedy episodes of Gymnasium's CartPole-v1.

    python scripts/train.py [--agent NAME] [--env ID] [--seeds N] [--sweep NAME=V1,V2] ...
    python scripts/train.py --resume RUN_DIR
    python scripts/train.py --help
"""

import sys

from agents.cli import train_main

if __name__ == "__main__":
    sys.exit(train_main())
