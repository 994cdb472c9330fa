"""Distributional TD rules for ONE transition: categorical (C51) and quantile (QR-DQN, IQN).

Names, argument order, defaults and values follow rlax 0.1.9 (`rlax.categorical_l2_project`,
`rlax.categorical_q_learning`, `rlax.quantile_q_learning`, ...). Two additions rlax lacks:
`iqn_q_learning` (implicit quantile networks) and the `TDRule` builders `categorical_rule` and
`quantile_rule`, which plug these losses into `tdkit.losses.td_loss`.

Layouts (as in rlax): categorical logits are `[A, K]` (actions, atoms) on a support `[K]`;
quantile values are `[N, A]` (quantiles first, actions second) with levels `tau [N]`.
Every function returns a LOSS (a scalar to minimise), not a TD error. Batches come from
`jax.vmap`.

Differences from rlax, all in tdkit's favour of stated conventions:

- `quantile_regression_loss(..., stop_target_gradients=True)` wraps `dist_target` in
  `jax.lax.stop_gradient`. rlax's flag only stops the step function `1{u < 0}` (whose
  derivative is zero anyway), so rlax differentiates through `dist_target` either way.
  Values are identical; only the gradient w.r.t. `dist_target` differs.
- Inputs are checked: ranks and dtypes always; matching atom, quantile and action counts
  always; when the values are concrete (not traced under `jit`), that supports are strictly
  increasing, quantile levels lie in `(0, 1)` and `huber_param >= 0`.
"""

from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np

from tdkit import _checks, losses, td

Array = chex.Array
Numeric = chex.Numeric


# --------------------------------------------------------------------------------------
# Checks shared by the functions below.


_concrete = _checks.concrete


def _assert_dim(fn: str, name: str, x: Array, axis: int, size: int, what: str) -> None:
    if jnp.shape(x)[axis] != size:
        raise AssertionError(
            f"[Chex] {fn}: argument `{name}` has shape {jnp.shape(x)}, but its axis {axis} must "
            f"have size {size} ({what})")


def _check_support(fn: str, name: str, atoms: Array) -> None:
    """A support `[K]` must be strictly increasing (checked when concrete)."""
    values = _concrete(atoms)
    if values is not None and not np.all(np.diff(values) > 0):
        raise ValueError(
            f"{fn}: argument `{name}` (a support of atoms) must be strictly increasing, got "
            f"{values.tolist()}")


def _check_taus(fn: str, name: str, taus: Array, closed: bool = False) -> None:
    """Quantile levels lie in `(0, 1)` (`[0, 1]` if `closed`), checked when concrete."""
    values = _concrete(taus)
    if values is None:
        return
    inside = (values >= 0) & (values <= 1) if closed else (values > 0) & (values < 1)
    if not np.all(inside):
        interval = "[0, 1]" if closed else "(0, 1)"
        hint = "" if closed else " (e.g. the midpoints (2i + 1) / (2N), not linspace(0, 1, N))"
        raise ValueError(
            f"{fn}: argument `{name}` (quantile levels) must lie in {interval}{hint}, got "
            f"{values.tolist()}")


def _check_huber_param(fn: str, huber_param: Any) -> None:
    value = _concrete(huber_param)
    if value is not None and (value.ndim != 0 or not value >= 0):
        raise ValueError(
            f"{fn}: argument `huber_param` must be a number >= 0 (0: no Huber), got "
            f"{huber_param!r}")


# --------------------------------------------------------------------------------------
# Categorical (C51).


def _even_gap(atoms: Array) -> float | None:
    """The spacing of a concrete, evenly spaced support `[K]` (K >= 2; spacings equal to
    float32 rounding, as `linspace` makes them), else None."""
    values = _concrete(atoms)
    if values is None or values.ndim != 1 or values.shape[0] < 2:
        return None
    values = values.astype(np.float64)
    gap = (values[-1] - values[0]) / (values.shape[0] - 1)
    error = np.max(np.abs(values - (values[0] + gap * np.arange(values.shape[0]))))
    scale = max(np.max(np.abs(values)), gap)
    return float(gap) if gap > 0 and error <= 1e-6 * scale else None


def categorical_l2_project(z_p: Array, probs: Array, z_q: Array) -> Array:
    """Projects the categorical distribution `(z_p, probs)` onto the support `z_q` (Cramer).

    The projection minimises the L2 distance between cumulative distribution functions
    (Bellemare, Dabney and Munos 2017, eq. 7). Each source atom, clipped to
    `[z_q[0], z_q[-1]]`, splits its mass between its two neighbours on `z_q`, in proportion
    to how close it is to each:

        out[i] = sum_j probs[j] * clip(1 - |clip(z_p[j]) - z_q[i]| / gap_ij, 0, 1)

    where `gap_ij = z_q[i+1] - z_q[i]` if `clip(z_p[j]) >= z_q[i]`, else `z_q[i] - z_q[i-1]`.
    For a concrete, evenly spaced `z_q` (C51's `linspace`) the same weights are applied in
    O(Kp) instead of O(Kp Kq): with `position[j] = (clip(z_p[j]) - z_q[0]) / gap`, its lower
    neighbour `l[j] = min(floor(position[j]), Kq - 2)` and `f[j] = position[j] - l[j]` in
    `[0, 1]`, each source atom adds `probs[j] * (1 - f[j])` to `out[l[j]]` and
    `probs[j] * f[j]` to `out[l[j] + 1]` (one scatter-add; gradients and forward-mode
    derivatives flow through it as through the general formula).

    Args:
      z_p: atoms of the source distribution, shape `[Kp]` (any order, e.g. `r + gamma z`).
      probs: probabilities of those atoms, shape `[Kp]`.
      z_q: the support to project onto, shape `[Kq]`, strictly increasing; `Kq` may differ
        from `Kp`.

    Returns:
      The projected probabilities on `z_q`, shape `[Kq]`.
    """
    fn = "categorical_l2_project"
    _checks.assert_inputs(fn, z_p=(z_p, 1, float), probs=(probs, 1, float), z_q=(z_q, 1, float))
    _checks.assert_same_shape(fn, z_p=z_p, probs=probs)
    _check_support(fn, "z_q", z_q)
    gap = _even_gap(z_q)
    z_q = jnp.asarray(z_q)
    # Source atoms outside the support land on its end atoms.
    z_p = jnp.clip(z_p, z_q[0], z_q[-1])
    if gap is not None:  # evenly spaced (e.g. C51's linspace): two neighbours per atom
        return _project_evenly_spaced(z_p, probs, z_q, gap)
    gaps = z_q[1:] - z_q[:-1]
    inv_gaps = jnp.where(gaps > 0, 1.0 / jnp.where(gaps > 0, gaps, 1.0), 0.0)
    zero = jnp.zeros((1,), z_q.dtype)
    inv_gap_above = jnp.concatenate([inv_gaps, zero])  # 1 / (z_q[i+1] - z_q[i]), [Kq]
    inv_gap_below = jnp.concatenate([zero, inv_gaps])  # 1 / (z_q[i] - z_q[i-1]), [Kq]
    offset = z_p[None, :] - z_q[:, None]  # [Kq, Kp]
    inv_gap = jnp.where(offset >= 0, inv_gap_above[:, None], inv_gap_below[:, None])
    share = jnp.clip(1.0 - jnp.abs(offset) * inv_gap, 0.0, 1.0)  # [Kq, Kp]
    return share @ probs


def _project_evenly_spaced(z_p: Array, probs: Array, z_q: Array, gap: float) -> Array:
    """`categorical_l2_project` onto an evenly spaced `z_q [Kq]` (Kq >= 2) of spacing `gap`,
    for `z_p [Kp]` already clipped to `[z_q[0], z_q[-1]]`: one scatter-add of two shares per
    source atom. A NaN atom sends NaN shares to `out[0]` and `out[1]` (the loss stays NaN)."""
    num_q = z_q.shape[0]
    position = (z_p - z_q[0]) / gap  # [Kp], in [0, Kq - 1]
    lower = jnp.clip(jnp.floor(position), 0, num_q - 2)  # [Kp], lower neighbour
    frac = position - lower  # [Kp], in [0, 1]: the upper neighbour's share
    index = jnp.where(jnp.isnan(lower), 0, lower).astype(jnp.int32)
    shares = jnp.stack([probs - probs * frac, probs * frac], axis=-1)  # [Kp, 2]
    # Row i of `pairs` holds what lands on atoms i and i + 1 from the atoms with l = i.
    pairs = jnp.zeros((num_q - 1, 2), shares.dtype).at[index].add(
        shares, mode="promise_in_bounds")  # [Kq - 1, 2]
    return jnp.pad(pairs[:, 0], (0, 1)) + jnp.pad(pairs[:, 1], (1, 0))


def _categorical_loss(atoms_tm1, logits_tm1, r_t, discount_t, atoms_t, probs_t, stop):
    """Cross-entropy of `logits_tm1 [K]` against the projected target `(r + g z_t, probs_t)`."""
    target = categorical_l2_project(r_t + discount_t * atoms_t, probs_t, atoms_tm1)
    target = td.maybe_stop_gradient(target, stop)
    return -jnp.sum(target * jax.nn.log_softmax(logits_tm1))


def categorical_td_learning(
    v_atoms_tm1: Array,
    v_logits_tm1: Array,
    r_t: Numeric,
    discount_t: Numeric,
    v_atoms_t: Array,
    v_logits_t: Array,
    stop_target_gradients: bool = True,
) -> Numeric:
    """Categorical TD learning for a state-value distribution (C51 without actions).

        target = Proj_{v_atoms_tm1}(r_t + discount_t * v_atoms_t, softmax(v_logits_t))
        loss = -sum_k target[k] * log_softmax(v_logits_tm1)[k]

    `target` is wrapped in `stop_gradient` unless `stop_target_gradients=False`.

    Args:
      v_atoms_tm1: support of the predicted distribution, shape `[K]`, strictly increasing.
      v_logits_tm1: logits of the predicted distribution, shape `[K]`.
      r_t: reward, shape `[]`.
      discount_t: `gamma * (1 - terminated_t)`, shape `[]`.
      v_atoms_t: support of the next-state distribution, shape `[K']`, strictly increasing.
      v_logits_t: logits of the next-state distribution, shape `[K']`.
      stop_target_gradients: wrap the projected target in `stop_gradient`.

    Returns:
      The cross-entropy loss, shape `[]`.
    """
    fn = "categorical_td_learning"
    _checks.assert_inputs(
        fn, v_atoms_tm1=(v_atoms_tm1, 1, float), v_logits_tm1=(v_logits_tm1, 1, float),
        r_t=(r_t, 0, float), discount_t=(discount_t, 0, float),
        v_atoms_t=(v_atoms_t, 1, float), v_logits_t=(v_logits_t, 1, float))
    _checks.assert_same_shape(fn, v_atoms_tm1=v_atoms_tm1, v_logits_tm1=v_logits_tm1)
    _checks.assert_same_shape(fn, v_atoms_t=v_atoms_t, v_logits_t=v_logits_t)
    _check_support(fn, "v_atoms_tm1", v_atoms_tm1)
    _check_support(fn, "v_atoms_t", v_atoms_t)
    return _categorical_loss(v_atoms_tm1, v_logits_tm1, r_t, discount_t, v_atoms_t,
                             jax.nn.softmax(v_logits_t), stop_target_gradients)


def _check_categorical_q(fn: str, q_atoms_tm1, q_logits_tm1, q_atoms_t, q_logits_t) -> None:
    num_actions = jnp.shape(q_logits_tm1)[0]
    _assert_dim(fn, "q_logits_tm1", q_logits_tm1, 1, jnp.shape(q_atoms_tm1)[0],
                "one logit per atom of `q_atoms_tm1`")
    _assert_dim(fn, "q_logits_t", q_logits_t, 1, jnp.shape(q_atoms_t)[0],
                "one logit per atom of `q_atoms_t`")
    _assert_dim(fn, "q_logits_t", q_logits_t, 0, num_actions,
                "as many actions as `q_logits_tm1`")
    _check_support(fn, "q_atoms_tm1", q_atoms_tm1)
    _check_support(fn, "q_atoms_t", q_atoms_t)


def categorical_q_learning(
    q_atoms_tm1: Array,
    q_logits_tm1: Array,
    a_tm1: Numeric,
    r_t: Numeric,
    discount_t: Numeric,
    q_atoms_t: Array,
    q_logits_t: Array,
    stop_target_gradients: bool = True,
) -> Numeric:
    """Categorical Q-learning (C51, Bellemare, Dabney and Munos 2017).

        a* = argmax_a sum_k softmax(q_logits_t[a])[k] * q_atoms_t[k]
        target = Proj_{q_atoms_tm1}(r_t + discount_t * q_atoms_t, softmax(q_logits_t[a*]))
        loss = -sum_k target[k] * log_softmax(q_logits_tm1[a_tm1])[k]

    `target` is wrapped in `stop_gradient` unless `stop_target_gradients=False`.

    Args:
      q_atoms_tm1: support of the predicted distributions, shape `[K]`, strictly increasing.
      q_logits_tm1: logits of the predicted distributions, shape `[A, K]`.
      a_tm1: action taken, shape `[]` int.
      r_t: reward, shape `[]`.
      discount_t: `gamma * (1 - terminated_t)`, shape `[]`.
      q_atoms_t: support of the next-state distributions, shape `[K']`, strictly increasing.
      q_logits_t: logits of the next-state distributions, shape `[A, K']`.
      stop_target_gradients: wrap the projected target in `stop_gradient`.

    Returns:
      The cross-entropy loss, shape `[]`.
    """
    fn = "categorical_q_learning"
    _checks.assert_inputs(
        fn, q_atoms_tm1=(q_atoms_tm1, 1, float), q_logits_tm1=(q_logits_tm1, 2, float),
        a_tm1=(a_tm1, 0, int), r_t=(r_t, 0, float), discount_t=(discount_t, 0, float),
        q_atoms_t=(q_atoms_t, 1, float), q_logits_t=(q_logits_t, 2, float))
    _check_categorical_q(fn, q_atoms_tm1, q_logits_tm1, q_atoms_t, q_logits_t)
    probs_t = jax.nn.softmax(q_logits_t)  # [A, K']
    a_t = jnp.argmax(probs_t @ q_atoms_t)
    return _categorical_loss(q_atoms_tm1, q_logits_tm1[a_tm1], r_t, discount_t, q_atoms_t,
                             probs_t[a_t], stop_target_gradients)


def categorical_double_q_learning(
    q_atoms_tm1: Array,
    q_logits_tm1: Array,
    a_tm1: Numeric,
    r_t: Numeric,
    discount_t: Numeric,
    q_atoms_t: Array,
    q_logits_t: Array,
    q_t_selector: Array,
    stop_target_gradients: bool = True,
) -> Numeric:
    """Categorical double Q-learning: C51 whose next action comes from `q_t_selector`.

        a* = argmax_a q_t_selector[a]
        target = Proj_{q_atoms_tm1}(r_t + discount_t * q_atoms_t, softmax(q_logits_t[a*]))
        loss = -sum_k target[k] * log_softmax(q_logits_tm1[a_tm1])[k]

    `target` is wrapped in `stop_gradient` unless `stop_target_gradients=False`.

    Args:
      q_atoms_tm1: support of the predicted distributions, shape `[K]`, strictly increasing.
      q_logits_tm1: logits of the predicted distributions, shape `[A, K]`.
      a_tm1: action taken, shape `[]` int.
      r_t: reward, shape `[]`.
      discount_t: `gamma * (1 - terminated_t)`, shape `[]`.
      q_atoms_t: support of the next-state distributions, shape `[K']`, strictly increasing.
      q_logits_t: logits of the next-state distributions (they evaluate `a*`), `[A, K']`.
      q_t_selector: action VALUES (not distributions) that choose `a*`, shape `[A]`, e.g.
        the online network's means `softmax(logits) @ atoms`.
      stop_target_gradients: wrap the projected target in `stop_gradient`.

    Returns:
      The cross-entropy loss, shape `[]`.
    """
    fn = "categorical_double_q_learning"
    _checks.assert_inputs(
        fn, q_atoms_tm1=(q_atoms_tm1, 1, float), q_logits_tm1=(q_logits_tm1, 2, float),
        a_tm1=(a_tm1, 0, int), r_t=(r_t, 0, float), discount_t=(discount_t, 0, float),
        q_atoms_t=(q_atoms_t, 1, float), q_logits_t=(q_logits_t, 2, float),
        q_t_selector=(q_t_selector, 1, float))
    _check_categorical_q(fn, q_atoms_tm1, q_logits_tm1, q_atoms_t, q_logits_t)
    _assert_dim(fn, "q_t_selector", q_t_selector, 0, jnp.shape(q_logits_t)[0],
                "one value per action of `q_logits_t`")
    probs_t = jax.nn.softmax(q_logits_t[jnp.argmax(q_t_selector)])
    return _categorical_loss(q_atoms_tm1, q_logits_tm1[a_tm1], r_t, discount_t, q_atoms_t,
                             probs_t, stop_target_gradients)


# --------------------------------------------------------------------------------------
# Quantile (QR-DQN, IQN).


def _quantile_huber(u: Array, huber_param: Any) -> Array:
    """`huber_loss(u, huber_param)` if `huber_param > 0`, else `|u|`."""
    value = _concrete(huber_param)
    if value is not None:
        return losses.huber_loss(u, float(value)) if value > 0 else jnp.abs(u)
    safe = jnp.where(huber_param > 0, huber_param, 1.0)
    return jnp.where(huber_param > 0, losses.huber_loss(u, safe), jnp.abs(u))


def _quantile_loss(dist_src, tau_src, dist_target, huber_param, stop):
    """sum_i mean_j |tau_i - 1{u_ij < 0}| rho(u_ij), u_ij = target_j - src_i (no checks)."""
    dist_target = td.maybe_stop_gradient(dist_target, stop)
    u = dist_target[None, :] - dist_src[:, None]  # [N, N']
    weight = jnp.abs(tau_src[:, None] - (u < 0).astype(u.dtype))
    return jnp.sum(jnp.mean(weight * _quantile_huber(u, huber_param), axis=-1))


def quantile_regression_loss(
    dist_src: Array,
    tau_src: Array,
    dist_target: Array,
    huber_param: float = 0.,
    stop_target_gradients: bool = True,
) -> Numeric:
    """Quantile (Huber) regression loss between two quantile distributions (Dabney et al. 2018).

        u[i, j] = dist_target[j] - dist_src[i]
        loss = sum_i mean_j |tau_src[i] - 1{u[i, j] < 0}| * rho(u[i, j])

    with `rho = huber_loss(., huber_param)` if `huber_param > 0`, else `|.|` (rlax's
    convention: the Huber term is not divided by `huber_param`). Its minimiser over
    `dist_src[i]` is the `tau_src[i]`-quantile of the target samples.

    Args:
      dist_src: predicted quantile values, shape `[N]`.
      tau_src: their quantile levels, shape `[N]`, in `(0, 1)`.
      dist_target: target samples (quantile values), shape `[N']`.
      huber_param: Huber threshold `kappa >= 0`; 0 (default, as rlax) gives the plain
        quantile (pinball) loss.
      stop_target_gradients: wrap `dist_target` in `stop_gradient` (rlax's flag has no
        effect on gradients; see the module docstring).

    Returns:
      The loss, shape `[]`.
    """
    fn = "quantile_regression_loss"
    _checks.assert_inputs(
        fn, dist_src=(dist_src, 1, float), tau_src=(tau_src, 1, float),
        dist_target=(dist_target, 1, float))
    _checks.assert_same_shape(fn, dist_src=dist_src, tau_src=tau_src)
    _check_taus(fn, "tau_src", tau_src)
    _check_huber_param(fn, huber_param)
    return _quantile_loss(dist_src, tau_src, dist_target, huber_param, stop_target_gradients)


def _check_quantile_q(fn, dist_q_tm1, tau_name, tau, others: dict, closed=False) -> None:
    """`tau [N]` matches `dist_q_tm1 [N, A]`; every other `[N', A]` has the same `A`."""
    _assert_dim(fn, tau_name, tau, 0, jnp.shape(dist_q_tm1)[0],
                "one level per quantile (row) of `dist_q_tm1`")
    num_actions = jnp.shape(dist_q_tm1)[1]
    for name, x in others.items():
        _assert_dim(fn, name, x, 1, num_actions, "as many actions as `dist_q_tm1`")
    _check_taus(fn, tau_name, tau, closed)


def _quantile_q_loss(dist_q_tm1, tau, a_tm1, r_t, discount_t, dist_q_t_selector, dist_q_t,
                     huber_param, stop):
    """Quantile Q-learning loss after the checks (shared by QR-DQN and IQN)."""
    a_t = jnp.argmax(jnp.mean(dist_q_t_selector, axis=0))
    dist_target = r_t + discount_t * dist_q_t[:, a_t]
    return _quantile_loss(dist_q_tm1[:, a_tm1], tau, dist_target, huber_param, stop)


def quantile_q_learning(
    dist_q_tm1: Array,
    tau_q_tm1: Array,
    a_tm1: Numeric,
    r_t: Numeric,
    discount_t: Numeric,
    dist_q_t_selector: Array,
    dist_q_t: Array,
    huber_param: float = 0.,
    stop_target_gradients: bool = True,
) -> Numeric:
    """Quantile regression Q-learning (QR-DQN, Dabney et al. 2018).

        a* = argmax_a mean_j dist_q_t_selector[j, a]
        target[j] = r_t + discount_t * dist_q_t[j, a*]
        loss = quantile_regression_loss(dist_q_tm1[:, a_tm1], tau_q_tm1, target, huber_param)

    `target` is wrapped in `stop_gradient` unless `stop_target_gradients=False`.

    Args:
      dist_q_tm1: predicted quantile values, shape `[N, A]`.
      tau_q_tm1: their quantile levels, shape `[N]`, in `(0, 1)`.
      a_tm1: action taken, shape `[]` int.
      r_t: reward, shape `[]`.
      discount_t: `gamma * (1 - terminated_t)`, shape `[]`.
      dist_q_t_selector: quantile values that choose `a*` (by their mean), shape `[N'', A]`:
        `dist_q_t` itself for QR-DQN, the online network's for double Q-learning.
      dist_q_t: target quantile values at the next state, shape `[N', A]`.
      huber_param: Huber threshold `kappa >= 0`; 0 (default, as rlax) gives the plain
        quantile loss (QR-DQN used 1).
      stop_target_gradients: wrap the target in `stop_gradient`.

    Returns:
      The loss, shape `[]`.
    """
    fn = "quantile_q_learning"
    _checks.assert_inputs(
        fn, dist_q_tm1=(dist_q_tm1, 2, float), tau_q_tm1=(tau_q_tm1, 1, float),
        a_tm1=(a_tm1, 0, int), r_t=(r_t, 0, float), discount_t=(discount_t, 0, float),
        dist_q_t_selector=(dist_q_t_selector, 2, float), dist_q_t=(dist_q_t, 2, float))
    _check_quantile_q(fn, dist_q_tm1, "tau_q_tm1", tau_q_tm1,
                      {"dist_q_t_selector": dist_q_t_selector, "dist_q_t": dist_q_t})
    _check_huber_param(fn, huber_param)
    return _quantile_q_loss(dist_q_tm1, tau_q_tm1, a_tm1, r_t, discount_t, dist_q_t_selector,
                            dist_q_t, huber_param, stop_target_gradients)


def quantile_expected_sarsa(
    dist_q_tm1: Array,
    tau_q_tm1: Array,
    a_tm1: Numeric,
    r_t: Numeric,
    discount_t: Numeric,
    dist_q_t: Array,
    probs_a_t: Array,
    huber_param: float = 0.,
    stop_target_gradients: bool = True,
) -> Numeric:
    """Quantile regression expected Sarsa: the QR loss averaged over next actions.

        target_a[j] = r_t + discount_t * dist_q_t[j, a]
        loss = sum_a probs_a_t[a] *
               quantile_regression_loss(dist_q_tm1[:, a_tm1], tau_q_tm1, target_a, huber_param)

    `target_a` and `probs_a_t` are wrapped in `stop_gradient` unless
    `stop_target_gradients=False`.

    Args:
      dist_q_tm1: predicted quantile values, shape `[N, A]`.
      tau_q_tm1: their quantile levels, shape `[N]`, in `(0, 1)`.
      a_tm1: action taken, shape `[]` int.
      r_t: reward, shape `[]`.
      discount_t: `gamma * (1 - terminated_t)`, shape `[]`.
      dist_q_t: target quantile values at the next state, shape `[N', A]`.
      probs_a_t: target-policy probabilities at the next state, shape `[A]`.
      huber_param: Huber threshold `kappa >= 0`; 0 (default, as rlax): no Huber.
      stop_target_gradients: wrap the targets and `probs_a_t` in `stop_gradient`.

    Returns:
      The loss, shape `[]`.
    """
    fn = "quantile_expected_sarsa"
    _checks.assert_inputs(
        fn, dist_q_tm1=(dist_q_tm1, 2, float), tau_q_tm1=(tau_q_tm1, 1, float),
        a_tm1=(a_tm1, 0, int), r_t=(r_t, 0, float), discount_t=(discount_t, 0, float),
        dist_q_t=(dist_q_t, 2, float), probs_a_t=(probs_a_t, 1, float))
    _check_quantile_q(fn, dist_q_tm1, "tau_q_tm1", tau_q_tm1, {"dist_q_t": dist_q_t})
    _assert_dim(fn, "probs_a_t", probs_a_t, 0, jnp.shape(dist_q_tm1)[1],
                "one probability per action of `dist_q_tm1`")
    _check_huber_param(fn, huber_param)
    dist_target = r_t + discount_t * dist_q_t  # [N', A]
    probs_a_t = td.maybe_stop_gradient(probs_a_t, stop_target_gradients)
    per_action = jax.vmap(_quantile_loss, in_axes=(None, None, 1, None, None))(
        dist_q_tm1[:, a_tm1], tau_q_tm1, dist_target, huber_param, stop_target_gradients)
    return jnp.dot(per_action, probs_a_t)


def iqn_q_learning(
    dist_q_tm1: Array,
    tau_tm1: Array,
    a_tm1: Numeric,
    r_t: Numeric,
    discount_t: Numeric,
    dist_q_t_selector: Array,
    dist_q_t: Array,
    huber_param: float = 1.0,
    stop_target_gradients: bool = True,
) -> Numeric:
    """Implicit quantile network (IQN, Dabney, Ostrovski, Silver and Munos 2018) loss.

    The network is evaluated at `N` sampled levels `tau_tm1 ~ U[0, 1]` for the prediction and
    at `N'` other sampled levels for the target (and `N''` for the selector):

        a* = argmax_a mean_j dist_q_t_selector[j, a]
        target[j] = r_t + discount_t * dist_q_t[j, a*]                      # [N']
        u[i, j] = target[j] - dist_q_tm1[i, a_tm1]
        loss = sum_i mean_j |tau_tm1[i] - 1{u[i, j] < 0}| * huber_loss(u[i, j], huber_param)

    This is `quantile_q_learning` with sampled levels and a Huber threshold of 1 by default;
    `N`, `N'` and `N''` may all differ (the paper: `N = N' = 64`, `N'' = 32`). The paper
    divides the Huber term by `kappa = huber_param`; like rlax's quantile losses, this does
    not (identical at the default `huber_param=1`). `target` is wrapped in `stop_gradient`
    unless `stop_target_gradients=False`.

    Args:
      dist_q_tm1: predicted quantile values at levels `tau_tm1`, shape `[N, A]`.
      tau_tm1: the sampled levels, shape `[N]`, in `[0, 1]` (`jax.random.uniform` may
        return exactly 0, so the ends are allowed here).
      a_tm1: action taken, shape `[]` int.
      r_t: reward, shape `[]`.
      discount_t: `gamma * (1 - terminated_t)`, shape `[]`.
      dist_q_t_selector: quantile values (at their own sampled levels) whose mean chooses
        `a*`, shape `[N'', A]`: the target network's (IQN) or the online network's (double).
      dist_q_t: target-network quantile values at other sampled levels, shape `[N', A]`.
      huber_param: Huber threshold `kappa >= 0` (0: plain quantile loss).
      stop_target_gradients: wrap the target in `stop_gradient`.

    Returns:
      The loss, shape `[]`.
    """
    fn = "iqn_q_learning"
    _checks.assert_inputs(
        fn, dist_q_tm1=(dist_q_tm1, 2, float), tau_tm1=(tau_tm1, 1, float),
        a_tm1=(a_tm1, 0, int), r_t=(r_t, 0, float), discount_t=(discount_t, 0, float),
        dist_q_t_selector=(dist_q_t_selector, 2, float), dist_q_t=(dist_q_t, 2, float))
    _check_quantile_q(fn, dist_q_tm1, "tau_tm1", tau_tm1,
                      {"dist_q_t_selector": dist_q_t_selector, "dist_q_t": dist_q_t},
                      closed=True)
    _check_huber_param(fn, huber_param)
    return _quantile_q_loss(dist_q_tm1, tau_tm1, a_tm1, r_t, discount_t, dist_q_t_selector,
                            dist_q_t, huber_param, stop_target_gradients)


# --------------------------------------------------------------------------------------
# TDRule builders for `tdkit.losses.td_loss`.


def _values_check(rule: str, name: str, q: Array, size: int, what: str) -> None:
    if jnp.shape(q)[-1] != size:
        raise AssertionError(
            f"[Chex] td_loss: rule {rule!r} needs values [A, {size}] ({what}), but "
            f"`value_fn.apply` returned {name} of shape {jnp.shape(q)}")


def categorical_rule(atoms: Array, double: bool = False) -> losses.TDRule:
    """A C51 `TDRule` for `td_loss`, on a value function returning logits `[A, K]`.

    Per transition it calls `categorical_q_learning(atoms, logits_tm1, a_tm1, r_t,
    discount_t, atoms, logits_t)` (or `categorical_double_q_learning` with the online
    network's means `softmax(selector) @ atoms [A]` as `q_t_selector` when `double`):

        target = Proj_atoms(r_t + discount_t * atoms, softmax(logits_t[a*]))
        loss = -sum_k target[k] * log_softmax(logits_tm1[a_tm1])[k]

    Its "td_error" (what `has_aux` returns, e.g. for replay priorities) is the loss itself,
    as Dopamine's Rainbow uses the cross-entropy for priorities.

        value_fn = values.ValueFn(base.init, lambda p, o: base.apply(p, o).reshape(A, K))
        loss = td_loss(value_fn, categorical_rule(jnp.linspace(-10.0, 10.0, K)))

    Args:
      atoms: the support, shape `[K]`, strictly increasing (e.g. `linspace(-10, 10, 51)`).
      double: choose the next action with the online network (`params`) and evaluate it
        with the target network (Double DQN); costs one more forward pass.

    Returns:
      A `tdkit.TDRule` with `returns_loss=True` and `value_ndim=2`.
    """
    fn_name = "categorical_rule"
    _checks.assert_inputs(fn_name, atoms=(atoms, 1, float))
    if _concrete(atoms) is None:
        raise ValueError(f"{fn_name}: argument `atoms` must be concrete (not traced)")
    _check_support(fn_name, "atoms", atoms)
    if not isinstance(double, bool):
        raise TypeError(f"{fn_name}: argument `double` must be a bool, got {double!r}")
    atoms = np.asarray(atoms)
    num_atoms = atoms.shape[0]
    name = "categorical_double_q_learning" if double else "categorical_q_learning"

    def rule(logits_tm1, logits_t, selector, t, stop):
        _values_check(name, "logits", logits_tm1, num_atoms, "one logit per atom")
        if double:
            q_t_selector = jax.nn.softmax(selector) @ atoms
            loss = categorical_double_q_learning(
                atoms, logits_tm1, t.a_tm1, t.r_t, t.discount_t, atoms, logits_t, q_t_selector,
                stop)
        else:
            loss = categorical_q_learning(
                atoms, logits_tm1, t.a_tm1, t.r_t, t.discount_t, atoms, logits_t, stop)
        return loss, loss

    return losses.TDRule(rule, returns_loss=True, needs_selector=double, value_ndim=2,
                         name=name)


def quantile_midpoints(num_quantiles: int) -> np.ndarray:
    """The QR-DQN quantile levels `(2i + 1) / (2N)`, `i = 0..N-1`: shape `[N]` float32."""
    if isinstance(num_quantiles, bool) or not isinstance(num_quantiles, (int, np.integer)) \
            or num_quantiles <= 0:
        raise ValueError(
            f"quantile_midpoints: argument `num_quantiles` must be a positive int, got "
            f"{num_quantiles!r}")
    return ((2 * np.arange(num_quantiles) + 1) / (2 * num_quantiles)).astype(np.float32)


def quantile_rule(taus: int | Array, huber_param: float = 1.0,
                  double: bool = False) -> losses.TDRule:
    """A QR-DQN `TDRule` for `td_loss`, on a value function returning quantiles `[A, K]`.

    Per transition it calls `quantile_q_learning(q_tm1.T, taus, a_tm1, r_t, discount_t,
    selector.T, q_t.T, huber_param)`, where the target action maximises the mean quantile
    value of `selector`: the target network's `q_t` (QR-DQN), or the online network's values
    at `obs_t` when `double`.

    Its "td_error" (what `has_aux` returns, e.g. for replay priorities) is the loss itself.

        value_fn = values.ValueFn(base.init, lambda p, o: base.apply(p, o).reshape(A, K))
        loss = td_loss(value_fn, quantile_rule(K))

    Args:
      taus: the number of quantiles `K` (levels: the midpoints `(2i + 1) / (2K)`, as
        QR-DQN), or the levels themselves, shape `[K]`, in `(0, 1)`.
      huber_param: Huber threshold `kappa >= 0` (QR-DQN used 1; 0: plain quantile loss).
      double: choose the next action with the online network (one more forward pass).

    Returns:
      A `tdkit.TDRule` with `returns_loss=True` and `value_ndim=2`.
    """
    fn_name = "quantile_rule"
    if isinstance(taus, (int, np.integer)) and not isinstance(taus, bool):
        if taus <= 0:
            raise ValueError(f"{fn_name}: argument `taus` must be a positive int or levels [K], "
                             f"got {taus!r}")
        taus = quantile_midpoints(int(taus))
    _checks.assert_inputs(fn_name, taus=(taus, 1, float))
    if _concrete(taus) is None:
        raise ValueError(f"{fn_name}: argument `taus` must be concrete (not traced)")
    _check_taus(fn_name, "taus", taus)
    _check_huber_param(fn_name, huber_param)
    if not isinstance(double, bool):
        raise TypeError(f"{fn_name}: argument `double` must be a bool, got {double!r}")
    taus = np.asarray(taus)
    num_quantiles = taus.shape[0]
    name = "quantile_double_q_learning" if double else "quantile_q_learning"

    def rule(q_tm1, q_t, selector, t, stop):
        _values_check(name, "quantiles", q_tm1, num_quantiles, "one value per level in `taus`")
        selector = selector if double else q_t
        loss = quantile_q_learning(q_tm1.T, taus, t.a_tm1, t.r_t, t.discount_t, selector.T,
                                   q_t.T, huber_param, stop)
        return loss, loss

    return losses.TDRule(rule, returns_loss=True, needs_selector=double, value_ndim=2,
                         name=name)
