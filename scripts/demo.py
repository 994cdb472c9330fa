"""Per-example TD gradients of a linear value function on random-walk transitions.

A small, real demonstration of tdkit's core idea: a TD loss for ONE transition, turned into
per-example gradients with `jax.jit(jax.vmap(jax.grad(loss)))`. It samples transitions from
the 19-state random walk (Sutton & Barto, Example 7.1) with one-hot features, prints the
shapes, checks the gradients against `-delta * x_tm1`, times the compiled call, and runs a
few hundred steps of batched semi-gradient TD(0) to show the RMS error falling.

    python scripts/demo.py [--batch 1024] [--states 19] [--steps 300]
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import tdkit


def random_walk_transitions(key, num_states, batch):
    """Uniform source states; left/right with prob 1/2; reward -1 / +1 at the two ends."""
    k1, k2 = jax.random.split(key)
    s_tm1 = jax.random.randint(k1, (batch,), 1, num_states + 1)  # states 1..N, terminals 0, N+1
    s_t = s_tm1 + jnp.where(jax.random.bernoulli(k2, 0.5, (batch,)), 1, -1)
    terminated = (s_t == 0) | (s_t == num_states + 1)
    r_t = jnp.where(s_t == num_states + 1, 1.0, jnp.where(s_t == 0, -1.0, 0.0))
    features = lambda s: jax.nn.one_hot(s - 1, num_states)  # terminals map to all zeros
    return tdkit.Transition(
        obs_tm1=features(s_tm1), a_tm1=jnp.zeros((batch,), jnp.int32), r_t=r_t,
        discount_t=tdkit.discount_from_terminated(terminated, 1.0), obs_t=features(s_t))


def td_loss(w, transition):
    """Semi-gradient TD(0) loss for ONE transition; its negative gradient is delta * x_tm1."""
    delta = tdkit.td_learning(
        jnp.dot(w, transition.obs_tm1), transition.r_t, transition.discount_t,
        jnp.dot(w, transition.obs_t))
    return tdkit.l2_loss(delta)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1024, help="transitions per batch")
    parser.add_argument("--states", type=int, default=19, help="non-terminal states")
    parser.add_argument("--steps", type=int, default=300, help="batched TD(0) steps")
    parser.add_argument("--alpha", type=float, default=0.5, help="step size")
    args = parser.parse_args()

    key = jax.random.key(0)
    w = jnp.zeros(args.states, jnp.float32)
    batch = random_walk_transitions(key, args.states, args.batch)
    per_example_grads = jax.jit(jax.vmap(jax.grad(td_loss), in_axes=(None, 0)))

    start = time.perf_counter()
    grads = per_example_grads(w, batch).block_until_ready()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    repeats = 100
    for _ in range(repeats):
        grads = per_example_grads(w, batch)
    grads.block_until_ready()
    call_ms = (time.perf_counter() - start) / repeats * 1e3

    delta = jax.vmap(lambda t: tdkit.td_learning(
        jnp.dot(w, t.obs_tm1), t.r_t, t.discount_t, jnp.dot(w, t.obs_t)))(batch)
    max_err = float(jnp.max(jnp.abs(grads + delta[:, None] * batch.obs_tm1)))
    print(f"device: {jax.devices()[0].platform}")
    print(f"transitions: obs_tm1 {batch.obs_tm1.shape}, r_t {batch.r_t.shape}, "
          f"discount_t {batch.discount_t.shape} ({int((batch.discount_t == 0).sum())} terminal)")
    print(f"per-example gradients: {grads.shape} {grads.dtype}; "
          f"max |grad + delta * x_tm1| = {max_err:.2e}")
    print(f"jit(vmap(grad)): compile {compile_s * 1e3:.1f} ms, then {call_ms:.3f} ms per call "
          f"({args.batch / call_ms * 1e3:,.0f} examples/s)")

    @jax.jit
    def train_step(w, key):
        batch = random_walk_transitions(key, args.states, args.batch)
        return w - args.alpha * per_example_grads(w, batch).mean(0) * args.states

    true_v = (np.arange(1, args.states + 1) - (args.states + 1) / 2) / ((args.states + 1) / 2)
    rms = lambda w: float(np.sqrt(np.mean((np.asarray(w) - true_v) ** 2)))
    print(f"batched TD(0), {args.steps} steps: RMS error {rms(w):.3f}", end="")
    for key in jax.random.split(jax.random.key(1), args.steps):
        w = train_step(w, key)
    print(f" -> {rms(w):.3f}")


if __name__ == "__main__":
    main()
