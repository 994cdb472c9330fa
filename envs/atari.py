"""Atari on the host loop: the Nature DQN preprocessing as ONE Gymnasium wrapper.

    python scripts/train.py --agent dqn --env PongNoFrameskip-v4 --backend gym \\
        --wrapper envs.atari.AtariNature          # or envs.atari.AtariNature:clip_rewards=true

    env = envs.make_gym_env("PongNoFrameskip-v4", wrappers=["envs.atari.AtariNature"])
    obs, _ = env.reset(seed=0)          # uint8 [84, 84, 4], the last 4 frames, newest last

Needs the `[atari]` extra (`pip install 'tdkit[atari]'`: ale-py, which ships the ROMs, and
OpenCV for the resizing); without it the factory and the wrapper fail with a one-line
`envs.gym_factory.MissingDependencyError` naming that extra. Importing this module registers
ALE's ids with Gymnasium when ale-py is installed (as `import ale_py` does); the factory
(`envs.gym_factory.resolve_gym_id`) also registers them on first use of such an id.

`AtariNature` chains Gymnasium's own wrappers (Mnih et al. 2015, as in CleanRL and SB3):

1. `gymnasium.wrappers.AtariPreprocessing`: up to `noop_max` random no-ops after each reset,
   each step repeats the action for `frame_skip` frames (rewards summed) and max-pools the
   last two, 84 x 84 grayscale, uint8 (not scaled: the agents' 'nature' torso divides by
   255); a lost life does not end the episode unless `terminal_on_life_loss`;
2. `gymnasium.wrappers.FrameStackObservation(stack_size)`: the last `stack_size` frames
   (after a reset, copies of the first one);
3. `StackAxisLast`: `[K, 84, 84]` -> `[84, 84, K]`, the `[H, W, C]` of tdkit's conv torsos;
4. with `clip_rewards`, `gymnasium.wrappers.TransformReward(np.sign)`: rewards in {-1, 0, 1}.
   The host loop then logs (and evaluation reports) CLIPPED returns; Pong's rewards are
   already +-1, other games' scores are not.

Ids: the base env must not skip frames itself (AtariPreprocessing does). Use the
`<Game>NoFrameskip-v4` ids (`PongNoFrameskip-v4`, `BreakoutNoFrameskip-v4`): frameskip 1, no
sticky actions, the setup of Nature DQN and CleanRL's `dqn_atari_jax.py`. The `ALE/<Game>-v5`
ids skip 4 frames and repeat the previous action with probability 0.25 (sticky actions,
Machado et al. 2018); `--env` cannot change that, so `AtariNature` refuses them with a
one-line message, except:
- from Python, make the env without frame skipping:
  `make_gym_env("ALE/Pong-v5", frameskip=1, wrappers=["envs.atari.AtariNature"])`
  (sticky actions stay on);
- `--wrapper envs.atari.AtariNature:frame_skip=1` keeps ALE's own frame skip (4 frames, no
  max-pooling of the last two; the no-ops then last 4 frames each).

Episodes end at the game's end, or are truncated after ALE's 108,000 frames (27,000 steps).
"""

import re
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation, TransformReward

from envs.gym_factory import MissingDependencyError

try:  # registers ALE's ids (ALE/Pong-v5, PongNoFrameskip-v4, ...) with Gymnasium
    import ale_py

    gymnasium.register_envs(ale_py)
except ImportError:
    ale_py = None

__all__ = ["AtariNature", "StackAxisLast"]


class StackAxisLast(gymnasium.ObservationWrapper, gymnasium.utils.RecordConstructorArgs):
    """Moves the leading (stack) axis of Box observations last: `[K, H, W]` -> `[H, W, K]`.

    For `FrameStackObservation`'s `[K, ...]` stacks, so that a conv torso taking `[H, W, C]`
    sees the K frames as channels. Observations are C-contiguous copies of the env's dtype.
    """

    def __init__(self, env: gymnasium.Env):
        gymnasium.utils.RecordConstructorArgs.__init__(self)
        gymnasium.ObservationWrapper.__init__(self, env)
        space = env.observation_space
        if not isinstance(space, spaces.Box) or len(space.shape) < 2:
            raise ValueError(f"StackAxisLast: expected a Box observation space of rank >= 2 "
                             f"([K, ...]), got {space}")
        self.observation_space = spaces.Box(
            np.moveaxis(space.low, 0, -1), np.moveaxis(space.high, 0, -1), dtype=space.dtype)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.moveaxis(observation, 0, -1))


class AtariNature(gymnasium.Wrapper):
    """Nature DQN's Atari preprocessing: uint8 observations `[84, 84, stack_size]` (see the
    module for the chain of Gymnasium wrappers it applies, innermost first).

    As a `--wrapper`: `envs.atari.AtariNature[:key=value,...]`, e.g.
    `envs.atari.AtariNature:clip_rewards=true,terminal_on_life_loss=true`.

    Args:
      env: an ALE env without frame skipping (`PongNoFrameskip-v4`, or `ALE/Pong-v5` made with
        `frameskip=1`); with `frame_skip=1` any ALE env.
      noop_max: up to this many random no-op actions after each reset (0: none).
      frame_skip: frames per step (the action repeated, rewards summed, the last two frames
        max-pooled).
      screen_size: side of the square grayscale frame.
      terminal_on_life_loss: end the episode (terminated) when a life is lost.
      stack_size: K, frames per observation.
      clip_rewards: rewards replaced by their sign (logged returns are then clipped too).

    Raises:
      MissingDependencyError: OpenCV (part of the `[atari]` extra) is not installed.
      ValueError: `env` is not an ALE env, or skips frames itself while `frame_skip > 1`.
    """

    def __init__(self, env: gymnasium.Env, noop_max: int = 30, frame_skip: int = 4,
                 screen_size: int = 84, terminal_on_life_loss: bool = False,
                 stack_size: int = 4, clip_rewards: bool = False):
        try:
            import cv2  # noqa: F401  (AtariPreprocessing resizes with OpenCV)
        except ImportError:
            raise MissingDependencyError(
                "AtariNature needs OpenCV: pip install 'tdkit[atari]' (or pip install "
                "'.[atari]')") from None
        base = env.unwrapped
        if not hasattr(base, "ale"):
            raise ValueError(f"AtariNature: expected an ALE (Atari) environment, got "
                             f"{_name(env)}; e.g. --env PongNoFrameskip-v4")
        base_skip = getattr(base, "_frameskip", None)
        if frame_skip > 1 and base_skip != 1:
            raise ValueError(
                f"AtariNature: {_name(env)} already skips frames (frameskip={base_skip}); "
                f"use {_no_frameskip_id(env)} (Nature DQN: no frame skip, no sticky actions), "
                "make it with frameskip=1, or pass frame_skip=1 to keep its own frame skip")
        chain = AtariPreprocessing(
            env, noop_max=noop_max, frame_skip=frame_skip, screen_size=screen_size,
            terminal_on_life_loss=terminal_on_life_loss, grayscale_obs=True, scale_obs=False)
        chain = StackAxisLast(FrameStackObservation(chain, stack_size))
        if clip_rewards:
            chain = TransformReward(chain, np.sign)
        super().__init__(chain)

    @property
    def spec(self):
        """The spec of the chain inside (Gymnasium's wrappers in order), so that
        `gymnasium.make(env.spec)` rebuilds this env."""
        return self.env.spec


def _name(env: gymnasium.Env) -> str:
    spec = getattr(env, "spec", None)
    return repr(spec.id) if spec is not None else type(env.unwrapped).__name__


def _no_frameskip_id(env: gymnasium.Env) -> str:
    """`'PongNoFrameskip-v4'` for an env made from `'ALE/Pong-v5'` (or `'Pong-v4'`, ...)."""
    spec: Any = getattr(env, "spec", None)
    match = re.fullmatch(r"(?:ALE/)?([A-Za-z0-9]+?)(?:NoFrameskip|Deterministic)?-v\d+",
                         spec.id if spec is not None else "")
    if match and f"{match.group(1)}NoFrameskip-v4" in gymnasium.registry:
        return repr(f"{match.group(1)}NoFrameskip-v4")
    return "a <Game>NoFrameskip-v4 id"
