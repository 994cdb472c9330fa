"""Evaluate a saved agent greedily on its Gymnasium environment.

    python scripts/evaluate.py RUN_DIR [--episodes N] [--env ID] [--video]
"""

import sys

from agents.cli import evaluate_main

if __name__ == "__main__":
    sys.exit(evaluate_main())
