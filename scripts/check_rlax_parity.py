"""Checks that tdkit's functions give rlax's values (run where rlax is installed).

rlax is NOT a dependency of tdkit or of its tests; this script is how we verify the claim
"same names, argument order and values as rlax". It draws random inputs (with episode ends
inside trajectories), calls both libraries with the same positional arguments, and prints
the largest absolute difference per function. rlax's returns default to
`stop_target_gradients=False`; values are unaffected by that flag.

    pip install rlax && python scripts/check_rlax_parity.py
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np

import tdkit


def main():
    try:
        import rlax
    except ImportError:
        print("rlax is not installed: pip install rlax", file=sys.stderr)
        return 2
    rng = np.random.default_rng(0)
    B, T, A = 32, 9, 4
    f = lambda *s: jnp.asarray(rng.normal(size=s), jnp.float32)
    i = lambda *s: jnp.asarray(rng.integers(0, A, size=s), jnp.int32)
    d = lambda *s: jnp.asarray(rng.choice([0.0, 0.9, 0.99], size=s), jnp.float32)
    probs = lambda *s: jnp.asarray(rng.dirichlet(np.ones(A), size=s), jnp.float32)
    u = lambda *s: jnp.asarray(rng.uniform(0.1, 1.0, size=s), jnp.float32)

    one_step = {
        "td_learning": (f(B), f(B), d(B), f(B)),
        "sarsa": (f(B, A), i(B), f(B), d(B), f(B, A), i(B)),
        "expected_sarsa": (f(B, A), i(B), f(B), d(B), f(B, A), probs(B)),
        "q_learning": (f(B, A), i(B), f(B), d(B), f(B, A)),
        "double_q_learning": (f(B, A), i(B), f(B), d(B), f(B, A), f(B, A)),
    }
    sequence = {
        "discounted_returns": (f(T), d(T), f(T)),
        "lambda_returns": (f(T), d(T), f(T), u(T)),
        "td_lambda": (f(T), f(T), d(T), f(T), u(T)),
        "sarsa_lambda": (f(T, A), i(T), f(T), d(T), f(T, A), i(T), 0.7),
        "q_lambda": (f(T, A), i(T), f(T), d(T), f(T, A), 0.7),
        "retrace": (f(T, A), f(T, A), i(T), i(T), f(T), d(T), probs(T), u(T), 0.9),
        "vtrace": (f(T), f(T), f(T), d(T), u(T) * 2),
        "general_off_policy_returns_from_action_values": (
            f(T, A), i(T), f(T), d(T), u(T), probs(T)),
    }
    rows = []
    for name, args in one_step.items():
        ours = jax.vmap(getattr(tdkit, name))(*args)
        theirs = jax.vmap(getattr(rlax, name))(*args)
        rows.append((name, float(jnp.max(jnp.abs(ours - theirs)))))
    for name, args in sequence.items():
        rows.append((name, float(jnp.max(jnp.abs(
            getattr(tdkit, name)(*args) - getattr(rlax, name)(*args))))))
    for n in (1, 3, T, T + 4):
        args = (f(T), d(T), f(T), n, u(T))
        rows.append((f"n_step_bootstrapped_returns(n={n})", float(jnp.max(jnp.abs(
            tdkit.n_step_bootstrapped_returns(*args) - rlax.n_step_bootstrapped_returns(*args))))))
    args = (f(T), f(T), f(T), d(T), u(T) * 2, u(T), 1.0, 0.8)
    ours, theirs = tdkit.vtrace_td_error_and_advantage(*args), rlax.vtrace_td_error_and_advantage(
        *args)
    for field in ("errors", "pg_advantage", "q_estimate"):
        rows.append((f"vtrace_td_error_and_advantage.{field}", float(jnp.max(jnp.abs(
            getattr(ours, field) - getattr(theirs, field))))))
    for x in (f(B) * 3,):
        rows.append(("huber_loss", float(jnp.max(jnp.abs(
            tdkit.huber_loss(x) - rlax.huber_loss(x))))))
        rows.append(("l2_loss", float(jnp.max(jnp.abs(tdkit.l2_loss(x) - rlax.l2_loss(x))))))
    width = max(len(r[0]) for r in rows)
    worst = max(r[1] for r in rows)
    for name, diff in rows:
        print(f"{name:<{width}}  max |tdkit - rlax| = {diff:.2e}")
    print(f"worst: {worst:.2e}")
    return 0 if worst < 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
