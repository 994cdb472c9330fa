"""Learners: the update maths of a deep TD agent as one pure function.

    state = learner.init(key, example_obs, hparams)              # LearnerState
    state, info = learner.step(state, batch, weights, hparams, key)   # one gradient step

A learner knows nothing of environments, replay, n-step windows, learning starts, target
updates or blocks of updates: those belong to a driver (`agents.replay_driver` for
off-policy learners on a replay buffer, `agents.rollout_driver` for on-policy learners on
`[T, N]` rollouts), which turns a learner into an `agents.base.Agent` for both training
loops. This is the shape of rlax's `examples/simple_dqn.py` (`LearnerState` plus a pure
`learner_step`) and Stoix's `learner_fn`: a new deep TD agent is one learner module.

`hparams` is the dict of float32 scalars of the agent's numeric hyperparameters (traced
under `jax.vmap` when seeds or sweeps train together); learners read what they need
(`learning_rate`, ...) and never cache it in a closure at build time.
"""

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from agents.base import merge_hparams
from tdkit.types import Transition

Array = chex.Array


class LearnerState(NamedTuple):
    """What a learner learns, as arrays.

    Attributes:
      params: online parameters (any pytree; e.g. `{"actor": ..., "critic": ...}`).
      target_params: target-network parameters (the driver updates them).
      opt_state: optax state.
      step: int32 `[]`, learner steps taken so far (one per `Learner.step` call: a gradient
        step of a replay learner, a whole rollout update of a rollout learner).
    """

    params: Any
    target_params: Any
    opt_state: Any
    step: Array


class Learner(NamedTuple):
    """The update maths of an agent, as pure functions.

    Attributes:
      init: `init(key, example_obs, hparams) -> LearnerState`; `example_obs` is ONE
        observation `[O...]`.
      step: `step(state, batch, weights, hparams, key) -> (state, info)`: one update on
        `batch` (a `tdkit.Transition` with a leading `[B]` for replay learners; an
        `agents.rollout_driver.Rollout` `[T, N]` for rollout learners), `weights` float32
        `[B]` (importance weights; ones for uniform replay; None for rollouts), `key` a
        PRNG key of the learner's own (noise, sampled quantiles, minibatch order).
        `info["loss"]` is a float32 `[]`; replay learners also return `info["priorities"]`,
        float32 `[B]` (e.g. `|TD error|`), for prioritized replay. `state.step` is
        incremented by the learner; target parameters are left to the driver.
      action_values: `action_values(params, obs) -> [N, A]`, the values that acting is
        greedy on (expected values for distributional learners) for observations `[N, O...]`.
      name: the learner's name.
      default_hparams: the learner's numeric hyperparameters and their defaults.
      check_hparams: optional `check_hparams(hparams) -> None`, raises ValueError naming an
        invalid (concrete) hyperparameter; drivers call it in `init`, also under `jit`
        (traced values are skipped).
      noisy_acting: `action_values(params, obs, key)` also takes a PRNG key (noisy networks
        explore through their noise); with `key=None` it gives the noise-free values (greedy
        evaluation).
      policy: for continuous actions (`action_values` None): `policy(params, obs [N, O...],
        key, hparams) -> actions [N, A]` inside the action bounds, exploring with `key`
        (exploration noise, a sampled action) and greedy with `key=None`.
      example_action: ONE action as stored in transitions (`a_tm1`); None: an int32 scalar
        (a discrete action). Continuous learners give a float32 `[A]`.
    """

    init: Callable[..., LearnerState]
    step: Callable[..., tuple[LearnerState, dict]]
    action_values: Callable[..., Array] | None
    name: str
    default_hparams: Mapping[str, float]
    check_hparams: Callable[[Mapping[str, Any]], None] | None = None
    noisy_acting: bool = False
    policy: Callable[..., Array] | None = None
    example_action: Any = None


def make_optimizer(name: str, learning_rate: Any, decay_steps: int | None = None,
                   max_grad_norm: float | None = None) -> optax.GradientTransformation:
    """An optax optimizer by name, with an optional linear learning-rate decay and clipping.

    The decay is an optax schedule (`learning_rate * (1 - min(count / decay_steps, 1))`, the
    count kept by the optimizer's own state), so nothing walks the optimizer state.
    `learning_rate` may be traced (a swept hyperparameter): build the optimizer inside the
    traced function that uses it, in `init` and in `step` alike.

    Args:
      name: an optax optimizer taking `learning_rate` (`"adam"`, `"rmsprop"`, `"sgd"`, ...).
      learning_rate: float `[]`, the (initial) step size.
      decay_steps: decay linearly to 0 over this many steps; None keeps it constant.
      max_grad_norm: clip the global gradient norm first; None: no clipping.
    """
    if not hasattr(optax, name):
        raise ValueError(f"`optimizer` {name!r} is not an optax optimizer")
    if decay_steps is not None:
        initial = learning_rate

        def learning_rate(count):  # an optax schedule: `count` is the optimizer's step count
            return initial * (1.0 - jnp.minimum(count.astype(jnp.float32) / decay_steps, 1.0))
    opt = getattr(optax, name)(learning_rate=learning_rate)
    if max_grad_norm is not None:
        opt = optax.chain(optax.clip_by_global_norm(max_grad_norm), opt)
    return opt


def gradient_learner(
    name: str,
    init_params: Callable[[Array, Array], Any],
    example_loss: Callable[..., tuple[Array, Array]],
    action_values: Callable[[Any, Array], Array],
    optimizer: Callable[[Mapping[str, Any]], optax.GradientTransformation],
    default_hparams: Mapping[str, float],
    check_hparams: Callable[[Mapping[str, Any]], None] | None = None,
    per_example_keys: bool = False,
    clipping: tuple[float, Callable[..., Array], Any] | None = None,
    noisy_acting: bool = False,
) -> Learner:
    """A replay learner that takes one optimizer step on the mean of a per-example loss.

    The shared body of DQN-family learners: an agent supplies its network (`init_params`),
    the loss of ONE transition and its acting values; this gives `init` and `step`:

        loss, priorities = mean_b example_loss(params, target_params, batch[b], weights[b], k_b)
        params, opt_state = optimizer.update(grad loss, ...)

    Args:
      name: the learner's name.
      init_params: `init_params(key, example_obs [O...]) -> params`.
      example_loss: `example_loss(params, target_params, transition, weight, key) ->
        (loss [], priority [])` for ONE `tdkit.Transition` and importance weight (the loss
        already weighted); `priority` feeds prioritized replay (e.g. `|TD error|`).
      action_values: `action_values(params, obs [N, O...]) -> [N, A]` for acting.
      optimizer: `optimizer(hparams) -> optax.GradientTransformation` (see `make_optimizer`;
        built in the traced step, so swept learning rates work).
      default_hparams: the learner's numeric hyperparameters.
      check_hparams: see `Learner`.
      per_example_keys: each example gets its own key (`split(key, B)`), e.g. for IQN's
        sampled quantile fractions; otherwise every example shares `key` (e.g. one noise
        sample of a noisy network per batch).
      clipping: `(max_norm, loss, structure)`: clip each example's gradient of
        `loss(params, target_params, transition, weight) -> []` to `max_norm` and average
        (`tdkit.grads.clipped_mean_grad`, with `structure` for its layerwise path); the
        reported loss and priorities still come from `example_loss`.
      noisy_acting: see `Learner`.

    Returns:
      A `Learner` whose `step(state, batch [B], weights [B], hparams, key)` returns
      `info = {"loss": [], "priorities": [B]}`.
    """

    def init(key, example_obs, hparams):
        params = init_params(key, jnp.asarray(example_obs, jnp.float32))
        return LearnerState(params=params, target_params=copy_tree(params),
                            opt_state=copy_tree(optimizer(hparams).init(params)),
                            step=jnp.zeros((), jnp.int32))

    def step(state, batch, weights, hparams, key):
        batch_size = weights.shape[0]
        keys = jax.random.split(key, batch_size) if per_example_keys else key
        key_axis = 0 if per_example_keys else None

        def mean_loss(params):
            losses, priorities = jax.vmap(example_loss, in_axes=(None, None, 0, 0, key_axis))(
                params, state.target_params, batch, weights, keys)
            return losses.mean(), priorities

        if clipping is None:
            (loss, priorities), grad = jax.value_and_grad(mean_loss, has_aux=True)(
                state.params)
        else:
            from tdkit import grads

            max_norm, clip_loss, structure = clipping
            loss, priorities = mean_loss(state.params)
            grad = grads.clipped_mean_grad(clip_loss, max_norm, in_axes=(None, None, 0, 0),
                                           structure=structure)(
                state.params, state.target_params, batch, weights)
        updates, opt_state = optimizer(hparams).update(grad, state.opt_state, state.params)
        state = state._replace(params=optax.apply_updates(state.params, updates),
                               opt_state=opt_state, step=state.step + 1)
        return state, {"loss": loss, "priorities": priorities}

    return Learner(init=init, step=step, action_values=action_values, name=name,
                   default_hparams=dict(default_hparams), check_hparams=check_hparams,
                   noisy_acting=noisy_acting)


def td_example_loss(loss: Callable[..., tuple[Array, Array]]) -> Callable[..., tuple[Array, Array]]:
    """`gradient_learner`'s `example_loss` for a `tdkit.td_loss(..., has_aux=True)` loss:
    the key is unused and the priority is `|td_error|` (for distributional rules the
    "td_error" is the per-example loss itself, so its own value)."""

    def example_loss(params, target_params, transition, weight, key):
        del key  # a td_loss is deterministic
        value, td_error = loss(params, target_params, transition, weight)
        return value, jnp.abs(td_error)

    return example_loss


def copy_tree(tree: Any) -> Any:
    """A copy of every leaf (no two leaves of a state may share a buffer: the host loop
    donates its state to XLA)."""
    import jax.numpy as jnp

    return jax.tree.map(jnp.copy, tree)


def start_learner(learner: Learner, key: Array, example_obs: Any,
                  default_hparams: Mapping[str, float], hparams: Mapping[str, Any] | None,
                  check: Callable[[Mapping[str, Any]], None]):
    """The start of a driver's `init`, shared by the drivers.

    Merges and checks the hyperparameters (`check` the driver's, then the learner's
    `check_hparams`; traced values are skipped), initialises the learner and splits off the
    agent's own key.

    Returns:
      `(hparams, learner_state, agent_key, example_transition)`: the float32 hyperparameters,
      the `LearnerState`, a PRNG key, and ONE zero `Transition` shaped like `example_obs`.
    """
    hp = merge_hparams(default_hparams, hparams)
    given = {**default_hparams, **(hparams or {})}
    check(given)
    if learner.check_hparams is not None:
        learner.check_hparams(given)
    k_params, k_state = jax.random.split(key)
    example_obs = jnp.asarray(example_obs, jnp.float32)
    example_action = (jnp.zeros((), jnp.int32) if learner.example_action is None
                      else jnp.zeros_like(learner.example_action))
    example = Transition(obs_tm1=example_obs, a_tm1=example_action,
                         r_t=jnp.zeros(()), discount_t=jnp.zeros(()), obs_t=example_obs)
    return hp, learner.init(k_params, example_obs, hp), k_state, example
