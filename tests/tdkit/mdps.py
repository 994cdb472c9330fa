"""Small MDPs for the tdkit tests, built by hand as plain NumPy arrays.

Each task is described by its target-policy transition matrix `P` over the NON-terminal
states (`P[s, s']`; a row sums to less than one where an episode can end), the expected
reward `r[s]` on leaving `s`, the discount `gamma`, the start distribution and a feature
matrix `X [S, F]`. Samplers return episodes in the layout of the per-episode functions of
`tdkit.traces`: `xs [T + 1, F]` (the last row is the final observation), `r_t [T]` and
`discount_t [T]` (zero at termination).

Nothing here imports tdkit: the MDPs are independent of the code under test.
"""

from typing import NamedTuple

import numpy as np


class Task(NamedTuple):
    P: np.ndarray  # [S, S] target-policy transitions between non-terminal states
    r: np.ndarray  # [S] expected reward on leaving each state
    gamma: float
    start: np.ndarray  # [S] start distribution
    X: np.ndarray  # [S, F] features


def random_walk(num_states: int) -> Task:
    """Random walk with `num_states` states in a row (S&B Example 6.2 / 7.1), tabular features.

    5 states: reward +1 on the right exit, 0 on the left (true values 1/6 .. 5/6).
    19 states: reward +1 on the right exit, -1 on the left (true values (s - 10) / 10).
    """
    n = num_states
    P = np.zeros((n, n))
    r = np.zeros(n)
    for s in range(n):
        if s > 0:
            P[s, s - 1] = 0.5
        if s < n - 1:
            P[s, s + 1] = 0.5
    left = 0.0 if n == 5 else -1.0
    r[0] += 0.5 * left
    r[n - 1] += 0.5 * 1.0
    start = np.zeros(n)
    start[n // 2] = 1.0
    return Task(P, r, 1.0, start, np.eye(n))


def sample_random_walk(rng: np.random.Generator, num_states: int) -> tuple:
    """One episode of `random_walk(num_states)`: `(states [T + 1], xs [T + 1, n], r [T], d [T])`.

    The final state is -1 (left exit) or n (right exit); its feature row is zeros.
    """
    n = num_states
    left = 0.0 if n == 5 else -1.0
    states = [n // 2]
    rewards = []
    while 0 <= states[-1] < n:
        s = states[-1] + (1 if rng.random() < 0.5 else -1)
        states.append(s)
        rewards.append(1.0 if s == n else (left if s == -1 else 0.0))
    states = np.array(states)
    xs = np.zeros((len(states), n))
    inside = (states >= 0) & (states < n)
    xs[np.nonzero(inside)[0], states[inside]] = 1.0
    discounts = np.ones(len(rewards))
    discounts[-1] = 0.0
    return states, xs, np.array(rewards), discounts


def boyan_features() -> np.ndarray:
    """Features of the Boyan chain states 13, 12, ..., 1 (row 0 is state 13), shape `[13, 4]`.

    x(13) = (1,0,0,0), x(9) = (0,1,0,0), x(5) = (0,0,1,0), x(1) = (0,0,0,1), linear
    interpolation in between.
    """
    X = np.zeros((13, 4))
    for row, state in enumerate(range(13, 0, -1)):
        k, rem = divmod(13 - state, 4)  # k-th anchor, rem steps past it
        if rem == 0:
            X[row, k] = 1.0
        else:
            X[row, k] = 1.0 - rem / 4
            X[row, k + 1] = rem / 4
    return X


BOYAN_W_STAR = np.array([-24.0, -16.0, -8.0, 0.0])


def boyan_chain() -> Task:
    """Boyan chain over the 12 non-terminal states 13..2 (row 0 is state 13); state 1 ends.

    From i >= 3: to i - 1 or i - 2 with probability 1/2, reward -3; from 2: to 1, reward -2.
    gamma = 1; v(i) = -2 (i - 1) = x(i) . (-24, -16, -8, 0).
    """
    n = 12
    P = np.zeros((n, n))
    r = np.full(n, -3.0)
    for row, state in enumerate(range(13, 1, -1)):
        for nxt in (state - 1, state - 2):
            if nxt >= 2:
                P[row, 13 - nxt] = 0.5
    r[-1] = -2.0
    start = np.zeros(n)
    start[0] = 1.0
    return Task(P, r, 1.0, start, boyan_features()[:n])


def boyan_transitions() -> tuple:
    """Every Boyan transition once: `(x_tm1 [23, 4], r_t [23], discount_t [23], x_t [23, 4])`.

    From each state i >= 3 both successors appear once (they are equally likely), from state 2
    the single move to the end. Each state's Bellman equation then holds exactly on average,
    so LSTD on this data set gives w* exactly.
    """
    X = boyan_features()
    x_tm1, r_t, d_t, x_t = [], [], [], []
    for state in range(13, 1, -1):
        nxts = (state - 1, state - 2) if state >= 3 else (1,)
        for nxt in nxts:
            x_tm1.append(X[13 - state])
            x_t.append(X[13 - nxt])
            r_t.append(-3.0 if state >= 3 else -2.0)
            d_t.append(0.0 if nxt == 1 else 1.0)
    return np.array(x_tm1), np.array(r_t), np.array(d_t), np.array(x_t)


def sample_boyan(rng: np.random.Generator) -> tuple:
    """One Boyan episode from state 13: `(xs [T + 1, 4], r [T], d [T])`."""
    X = boyan_features()
    states = [13]
    rewards = []
    while states[-1] != 1:
        s = states[-1]
        if s == 2:
            states.append(1)
            rewards.append(-2.0)
        else:
            states.append(s - 1 if rng.random() < 0.5 else s - 2)
            rewards.append(-3.0)
    xs = X[[13 - s for s in states]]
    discounts = np.ones(len(rewards))
    discounts[-1] = 0.0
    return xs, np.array(rewards), discounts


def baird_features() -> np.ndarray:
    """Baird's features in the book's order, shape `[7, 8]`.

    Upper state i (rows 0..5): v = 2 w_i + w_8; lower state (row 6): v = w_7 + 2 w_8.
    """
    X = np.zeros((7, 8))
    for i in range(6):
        X[i, i] = 2.0
        X[i, 7] = 1.0
    X[6, 6] = 1.0
    X[6, 7] = 2.0
    return X


BAIRD_W0 = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 10.0, 1.0])


def baird() -> Task:
    """Baird's counterexample under the TARGET policy (always solid: every state -> lower).

    `start` holds the behaviour policy's state distribution, uniform over the 7 states.
    """
    P = np.zeros((7, 7))
    P[:, 6] = 1.0
    return Task(P, np.zeros(7), 0.99, np.full(7, 1.0 / 7.0), baird_features())


def sample_baird(rng: np.random.Generator, num_steps: int) -> tuple:
    """A behaviour-policy stream on Baird's counterexample (continuing task).

    Returns `(x_tm1 [N, 8], rho_tm1 [N], x_t [N, 8])`; rewards are 0 and the discount is
    0.99 throughout. dashed (prob 6/7): to an upper state uniformly, rho = 0; solid (1/7):
    to the lower state, rho = 7.
    """
    X = baird_features()
    s = rng.integers(7)
    x_tm1, rho, x_t = [], [], []
    for _ in range(num_steps):
        if rng.random() < 6.0 / 7.0:
            nxt, ratio = rng.integers(6), 0.0
        else:
            nxt, ratio = 6, 7.0
        x_tm1.append(X[s])
        rho.append(ratio)
        x_t.append(X[nxt])
        s = nxt
    return np.array(x_tm1), np.array(rho), np.array(x_t)
