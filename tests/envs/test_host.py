"""Tests for envs.host: discounts at termination / truncation, true final observations, no
transition spanning two episodes, in every Gymnasium autoreset mode.

Expected transitions come from independent oracles: a plain Python loop over the episode
rules of the counting env below, and single (non-vector) Gymnasium envs stepped by hand.
"""

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.wrappers import TimeLimit

from envs.host import HostAdapter, make_host_env
from tdkit import replay

GAMMA = 0.9
MODES = [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP, AutoresetMode.DISABLED]


class CountingEnv(gymnasium.Env):
    """Deterministic: observation `[episode, t]`, reward `t` after step t, action 1
    terminates. The episode counter starts at 0 on the first reset."""

    observation_space = spaces.Box(0.0, 1e6, (2,), np.float32)
    action_space = spaces.Discrete(2)

    def __init__(self):
        self.episode, self.t = -1, 0

    def _obs(self):
        return np.array([self.episode, self.t], np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.episode, self.t = self.episode + 1, 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        return self._obs(), float(self.t), bool(action == 1), False, {}


def counting_vector_env(num_envs, limit, mode):
    return SyncVectorEnv(
        [lambda: TimeLimit(CountingEnv(), max_episode_steps=limit)] * num_envs,
        autoreset_mode=mode)


def counting_oracle(actions, limit, mode):
    """Plain loop over the env's rules: per step, per env, the expected output."""
    steps, num_envs = actions.shape
    out = []
    state = [dict(episode=0, t=0, pending=False, ret=0.0) for _ in range(num_envs)]
    for k in range(steps):
        row = []
        for i in range(num_envs):
            s, a = state[i], int(actions[k, i])
            if s["pending"]:  # NEXT_STEP: this step only resets env i
                s.update(episode=s["episode"] + 1, t=0, pending=False)
                row.append(dict(valid=False, next_obs=[s["episode"], 0], finished=False))
                continue
            obs_tm1 = [s["episode"], s["t"]]
            s["t"] += 1
            s["ret"] += s["t"]
            terminated = a == 1
            ended = terminated or s["t"] >= limit
            entry = dict(valid=True, obs_tm1=obs_tm1, a=a, r=float(s["t"]),
                         discount=0.0 if terminated else GAMMA, obs_t=[s["episode"], s["t"]],
                         finished=ended, ret=s["ret"], length=s["t"])
            if ended:
                s["ret"] = 0.0
                if mode == AutoresetMode.NEXT_STEP:
                    s["pending"] = True
                else:
                    s.update(episode=s["episode"] + 1, t=0)
            entry["next_obs"] = [s["episode"], s["t"]]
            row.append(entry)
        out.append(row)
    return out


def scripted_actions(steps, num_envs, seed=0):
    rng = np.random.default_rng(seed)
    actions = (rng.random((steps, num_envs)) < 0.25).astype(np.int64)
    actions[:, 0] = 0  # env 0 only ever truncates
    actions[2, 1], actions[3, 1] = 0, 1  # env 1 terminates at t == limit: both flags
    return actions


@pytest.mark.parametrize("mode", MODES)
def test_counting_env_matches_oracle_in_every_autoreset_mode(mode):
    limit, steps, num_envs = 3, 24, 3
    actions = scripted_actions(steps, num_envs)
    adapter = HostAdapter(counting_vector_env(num_envs, limit, mode), GAMMA)
    assert adapter.autoreset_mode == mode
    obs = adapter.reset()
    np.testing.assert_array_equal(obs, [[0, 0]] * num_envs)
    expected = counting_oracle(actions, limit, mode)
    num_invalid = num_truncations = num_terminations = 0
    for k in range(steps):
        step = adapter.step(actions[k])
        tr = step.transition
        assert tr.obs_tm1.dtype == np.float32 and tr.r_t.dtype == np.float32
        assert tr.discount_t.dtype == np.float32 and tr.a_tm1.dtype == np.int32
        for i, want in enumerate(expected[k]):
            assert bool(step.valid[i]) == want["valid"], (k, i)
            np.testing.assert_array_equal(step.next_obs[i], want["next_obs"])
            assert bool(step.episodes.finished[i]) == want["finished"]
            if not want["valid"]:
                num_invalid += 1
                assert step.episodes.returns[i] == 0 and step.episodes.lengths[i] == 0
                continue
            np.testing.assert_array_equal(tr.obs_tm1[i], want["obs_tm1"])
            np.testing.assert_array_equal(tr.obs_t[i], want["obs_t"])
            assert tr.a_tm1[i] == want["a"] and tr.r_t[i] == want["r"]
            np.testing.assert_allclose(tr.discount_t[i], want["discount"])
            if want["finished"]:
                assert step.episodes.returns[i] == want["ret"]
                assert step.episodes.lengths[i] == want["length"]
                num_terminations += want["discount"] == 0.0
                num_truncations += want["discount"] > 0.0
            # No valid transition spans two episodes; steps are consecutive.
            assert tr.obs_tm1[i, 0] == tr.obs_t[i, 0]
            assert tr.obs_t[i, 1] == tr.obs_tm1[i, 1] + 1
    assert num_truncations > 0 and num_terminations > 0
    assert (num_invalid > 0) == (mode == AutoresetMode.NEXT_STEP)
    adapter.close()


def test_truncation_bootstraps_from_real_final_obs_and_termination_does_not():
    """The two cases spelled out on the counting env (limit 3), SAME_STEP mode."""
    adapter = HostAdapter(counting_vector_env(2, 3, AutoresetMode.SAME_STEP), GAMMA)
    adapter.reset()
    adapter.step(np.array([0, 0]))
    adapter.step(np.array([0, 1]))  # env 1 terminates at t = 2
    step = adapter.step(np.array([0, 0]))  # env 0 is truncated at t = 3
    tr = step.transition
    np.testing.assert_array_equal(tr.obs_t[0], [0, 3])  # the real final obs...
    np.testing.assert_array_equal(step.next_obs[0], [1, 0])  # ...not the reset obs
    np.testing.assert_allclose(tr.discount_t[0], GAMMA)
    assert step.episodes.finished[0] and step.episodes.lengths[0] == 3
    assert step.episodes.returns[0] == 1 + 2 + 3
    # Env 1 started episode 1 on this step: its transition starts from the reset obs.
    np.testing.assert_array_equal(tr.obs_tm1[1], [1, 0])
    np.testing.assert_array_equal(tr.obs_t[1], [1, 1])


def test_reset_after_an_episode_end_clears_the_next_step_reset():
    adapter = HostAdapter(counting_vector_env(2, 1, AutoresetMode.NEXT_STEP), GAMMA)
    adapter.reset()
    step = adapter.step(np.array([0, 0]))  # limit 1: both episodes end
    assert step.valid.all() and step.episodes.finished.all()
    np.testing.assert_array_equal(adapter.reset(), [[1, 0], [1, 0]])
    step = adapter.step(np.array([0, 1]))  # a real step again, not a dropped reset step
    assert step.valid.all()
    np.testing.assert_array_equal(step.transition.obs_t, [[1, 1], [1, 1]])
    np.testing.assert_allclose(step.transition.discount_t, [GAMMA, 0.0])


def test_single_env_is_wrapped_with_same_step_autoreset():
    adapter = HostAdapter(TimeLimit(CountingEnv(), max_episode_steps=2), GAMMA)
    assert adapter.num_envs == 1 and adapter.autoreset_mode == AutoresetMode.SAME_STEP
    adapter.reset()
    adapter.step(np.array([0]))
    step = adapter.step(np.array([0]))
    np.testing.assert_array_equal(step.transition.obs_t, [[0, 2]])
    np.testing.assert_array_equal(step.next_obs, [[1, 0]])
    assert step.valid.tolist() == [True]


class InfoCountingEnv(CountingEnv):
    """CountingEnv whose step and reset infos carry data (to compare info dicts)."""

    def reset(self, *, seed=None, options=None):
        obs, _ = super().reset(seed=seed, options=options)
        return obs, {"reset_episode": self.episode}

    def step(self, action):
        obs, reward, terminated, truncated, _ = super().step(action)
        return obs, reward, terminated, truncated, {"t": self.t}


@pytest.mark.parametrize("make", [
    lambda: gymnasium.make("CartPole-v1", max_episode_steps=12),
    lambda: TimeLimit(InfoCountingEnv(), max_episode_steps=4)])
def test_one_env_direct_path_equals_the_vector_env_path(make):
    # One SyncVectorEnv sub-env in SAME_STEP mode is stepped directly; the general path is
    # forced by hiding the SyncVectorEnv behind a plain VectorWrapper.
    direct = HostAdapter(make(), GAMMA, seed=3)
    general = HostAdapter(gymnasium.vector.VectorWrapper(SyncVectorEnv(
        [make], autoreset_mode=AutoresetMode.SAME_STEP)), GAMMA, seed=3)
    assert direct._single is not None and general._single is None
    np.testing.assert_array_equal(direct.reset(), general.reset())
    rng = np.random.default_rng(0)
    ends = 0
    for _ in range(60):
        actions = rng.integers(0, 2, size=1).astype(np.int32)
        a, b = direct.step(actions), general.step(actions)
        for x, y in zip(jax.tree.leaves(a[:4]), jax.tree.leaves(b[:4]), strict=True):
            assert x.dtype == y.dtype and x.shape == y.shape
            np.testing.assert_array_equal(x, y)
        assert sorted(a.info) == sorted(b.info)
        for key in a.info:
            if key == "final_info":
                assert sorted(a.info[key]) == sorted(b.info[key])
            else:
                np.testing.assert_array_equal(np.stack(a.info[key]), np.stack(b.info[key]))
        ends += int(a.episodes.finished[0])
    assert ends >= 3
    direct.close()
    general.close()


@pytest.mark.parametrize("num_envs", [1, 3])
def test_step_into_writes_what_step_returns(num_envs):
    make = lambda: TimeLimit(InfoCountingEnv(), max_episode_steps=3)  # noqa: E731
    into = HostAdapter(SyncVectorEnv([make] * num_envs,
                                     autoreset_mode=AutoresetMode.SAME_STEP), GAMMA)
    plain = HostAdapter(SyncVectorEnv([make] * num_envs,
                                      autoreset_mode=AutoresetMode.SAME_STEP), GAMMA)
    assert (into._single is not None) == (num_envs == 1)
    np.testing.assert_array_equal(into.reset(), plain.reset())
    rng = np.random.default_rng(1)
    num_steps = 5
    ends = 0
    for _ in range(4):  # blocks
        transitions, lasts = into.transition_block(num_steps)
        assert transitions.obs_tm1.shape == (num_steps, num_envs, 2)
        assert lasts.shape == (num_steps, num_envs) and lasts.dtype == bool
        expected = []
        for k in range(num_steps):
            actions = (rng.random(num_envs) < 0.3).astype(np.int32)
            next_obs, episodes = into.step_into(actions, transitions, lasts, k)
            step = plain.step(actions)
            expected.append(step)
            np.testing.assert_array_equal(next_obs, step.next_obs)
            assert (episodes is None) == (not step.episodes.finished.any())
            if episodes is not None:
                ends += 1
                for x, y in zip(episodes, step.episodes, strict=True):
                    np.testing.assert_array_equal(x, y)
        for k, step in enumerate(expected):  # rows stay as written
            for block, row in zip(transitions, step.transition, strict=True):
                assert block.dtype == row.dtype
                np.testing.assert_array_equal(block[k], row)
            np.testing.assert_array_equal(lasts[k], step.episodes.finished)
    assert ends >= 4


def test_step_into_refuses_next_step_mode():
    adapter = HostAdapter(counting_vector_env(2, 3, AutoresetMode.NEXT_STEP), GAMMA)
    adapter.reset()
    transitions, lasts = adapter.transition_block(2)
    with pytest.raises(ValueError, match="SAME_STEP or DISABLED"):
        adapter.step_into(np.zeros(2, np.int32), transitions, lasts, 0)


def test_next_step_transitions_in_replay_never_span_episodes():
    """End to end: the valid mask keeps reset steps out of a tdkit replay buffer."""
    limit, steps, num_envs = 3, 20, 3
    adapter = HostAdapter(counting_vector_env(num_envs, limit, AutoresetMode.NEXT_STEP), GAMMA)
    buffer = replay.uniform_replay(capacity=64)
    adapter.reset()
    actions = scripted_actions(steps, num_envs, seed=1)
    first = adapter.step(actions[0])
    example = jax.tree.map(lambda x: x[0], first.transition)
    state = buffer.add(buffer.init(example), first.transition, first.valid)
    add = jax.jit(buffer.add)
    num_valid = int(first.valid.sum())
    for k in range(1, steps):
        step = adapter.step(actions[k])
        state = add(state, step.transition, step.valid)
        num_valid += int(step.valid.sum())
    expected = counting_oracle(actions, limit, AutoresetMode.NEXT_STEP)
    assert num_valid == sum(e["valid"] for row in expected for e in row) < steps * num_envs
    assert int(state.size) == num_valid
    stored = jax.tree.map(lambda x: np.asarray(x)[:num_valid], state.storage)
    np.testing.assert_array_equal(stored.obs_tm1[:, 0], stored.obs_t[:, 0])
    np.testing.assert_array_equal(stored.obs_t[:, 1], stored.obs_tm1[:, 1] + 1)


# -------------------------------------------------------------------------------- CartPole


def cartpole_reference(seed, actions, limit, next_step):
    """Single CartPole envs stepped by hand (reset with seed + i, then unseeded resets).

    With `next_step`, the action after an episode end is consumed by the reset, as in
    Gymnasium's NEXT_STEP autoreset."""
    steps, num_envs = actions.shape
    out = []
    for i in range(num_envs):
        env = gymnasium.make("CartPole-v1", max_episode_steps=limit)
        obs, _ = env.reset(seed=seed + i)
        rows, pending = [], False
        for k in range(steps):
            if pending:
                obs, pending = env.reset()[0], False
                continue
            nxt, r, term, trunc, _ = env.step(int(actions[k, i]))
            rows.append((obs, int(actions[k, i]), r, term, trunc, nxt))
            if (term or trunc) and next_step:
                pending = True
            else:
                obs = env.reset()[0] if term or trunc else nxt
        out.append(rows)
        env.close()
    return out


def check_against_cartpole_reference(adapter, actions, limit, seed):
    steps, num_envs = actions.shape
    got = [[] for _ in range(num_envs)]
    adapter.reset()
    for k in range(steps):
        step = adapter.step(actions[k])
        for i in np.flatnonzero(step.valid):
            got[i].append((step.transition, i, step.next_obs[i]))
    reference = cartpole_reference(
        seed, actions, limit, adapter.autoreset_mode == AutoresetMode.NEXT_STEP)
    kinds = set()
    for i in range(num_envs):
        assert len(got[i]) == len(reference[i]) > 0
        for (tr, j, next_obs), (obs, a, r, term, trunc, nxt) in zip(
                got[i], reference[i], strict=False):
            np.testing.assert_allclose(tr.obs_tm1[j], obs, rtol=1e-6)
            np.testing.assert_allclose(tr.obs_t[j], nxt, rtol=1e-6)  # the true next obs
            assert tr.a_tm1[j] == a and tr.r_t[j] == r
            np.testing.assert_allclose(tr.discount_t[j], 0.0 if term else GAMMA)
            if term or trunc:
                kinds.add("terminated" if term else "truncated")
                if adapter.autoreset_mode == AutoresetMode.NEXT_STEP:
                    np.testing.assert_array_equal(next_obs, tr.obs_t[j])  # reset comes next
                else:
                    assert not np.allclose(next_obs, nxt)  # acting goes on from a reset
    return kinds


@pytest.mark.parametrize("mode", MODES)
def test_cartpole_time_limit_matches_single_env_reference(mode):
    limit, seed, steps, num_envs = 4, 11, 14, 2
    actions = np.ones((steps, num_envs), np.int64)  # pushing right: terminates in ~9 steps
    actions[:, 0] = np.arange(steps) % 2  # alternating: truncated by the time limit
    adapter = make_host_env("CartPole-v1", num_envs, GAMMA, autoreset_mode=mode,
                            max_episode_steps=limit, seed=seed)
    kinds = check_against_cartpole_reference(adapter, actions, limit, seed)
    assert kinds == {"truncated"}  # limit 4 < steps to fall
    adapter.close()
    limit = 50
    adapter = make_host_env("CartPole-v1", num_envs, GAMMA, autoreset_mode=mode,
                            max_episode_steps=limit, seed=seed)
    kinds = check_against_cartpole_reference(adapter, np.ones_like(actions), limit, seed)
    assert kinds == {"terminated"}
    adapter.close()


def test_async_vector_env_matches_single_env_reference():
    limit, seed, steps, num_envs = 3, 5, 8, 2
    actions = np.tile(np.array([[0], [1]]), (steps // 2, num_envs)).astype(np.int64)
    with make_host_env("CartPole-v1", num_envs, GAMMA, asynchronous=True,
                       max_episode_steps=limit, seed=seed) as adapter:
        assert type(adapter.env).__name__ == "AsyncVectorEnv"
        kinds = check_against_cartpole_reference(adapter, actions, limit, seed)
    assert kinds == {"truncated"}


# -------------------------------------------------------------------------------- bad input


def test_bad_actions_raise_clear_errors():
    adapter = HostAdapter(counting_vector_env(2, 3, AutoresetMode.SAME_STEP), GAMMA)
    with pytest.raises(RuntimeError, match="reset"):
        adapter.step(np.array([0, 0]))
    adapter.reset()
    with pytest.raises(TypeError, match="`actions` must have an integer dtype.*float32"):
        adapter.step(np.array([0.0, 1.0], np.float32))
    with pytest.raises(ValueError, match=r"`actions` is outside.*sub-env\(s\) \[1\]: \[2\]"):
        adapter.step(np.array([0, 2]))
    with pytest.raises(ValueError, match=r"`actions` is outside.*\[0\]: \[-1\]"):
        adapter.step(jnp.array([-1, 0]))
    with pytest.raises(ValueError, match=r"`actions` must have shape \(2,\)"):
        adapter.step(np.array([0, 0, 0]))
    with pytest.raises(ValueError, match=r"`actions` must have shape \(2,\)"):
        adapter.step(np.int64(0))
    step = adapter.step(jnp.array([1, 0], jnp.int32))  # JAX int32 actions are fine
    np.testing.assert_array_equal(step.transition.a_tm1, [1, 0])
    # check=False (a loop whose agent makes valid actions) skips validation, same result.
    step = adapter.step(np.array([0, 1], np.int32), check=False)
    np.testing.assert_array_equal(step.transition.a_tm1, [0, 1])


def test_box_actions_are_checked_for_dtype_and_bounds():
    with make_host_env("Pendulum-v1", 2, GAMMA, seed=0) as adapter:
        adapter.reset()
        with pytest.raises(TypeError, match="`actions` must have a float dtype"):
            adapter.step(np.zeros((2, 1), np.int64))
        with pytest.raises(ValueError, match=r"outside.*sub-env\(s\) \[0\]"):
            adapter.step(np.array([[2.5], [0.0]], np.float32))
        with pytest.raises(ValueError, match=r"outside.*sub-env\(s\) \[1\]"):
            adapter.step(np.array([[0.0], [np.nan]], np.float32))
        step = adapter.step(np.array([[1.0], [-2.0]]))  # float64 is cast
        assert step.transition.a_tm1.dtype == np.float32
        assert step.transition.obs_t.shape == (2, 3)
        random = adapter.random_actions()
        assert random.shape == (2, 1) and random.dtype == np.float32
        assert np.all(np.abs(random) <= 2.0)


def test_bad_construction_raises():
    with pytest.raises(ValueError, match="gamma"):
        HostAdapter(counting_vector_env(1, 3, AutoresetMode.SAME_STEP), 1.5)
    with pytest.raises(ValueError, match="num_envs"):
        make_host_env("CartPole-v1", 0, GAMMA)
    with pytest.raises(ValueError, match="`env` must be"):
        HostAdapter(object(), GAMMA)

    class DictObsEnv(CountingEnv):
        observation_space = spaces.Dict({"x": spaces.Box(0, 1, (1,))})

    with pytest.raises(ValueError, match="observation space"):
        HostAdapter(DictObsEnv(), GAMMA)


def test_seed_makes_first_reset_reproducible():
    a = make_host_env("CartPole-v1", 2, GAMMA, seed=3)
    reference = [gymnasium.make("CartPole-v1").reset(seed=3 + i)[0] for i in range(2)]
    np.testing.assert_allclose(a.reset(), np.stack(reference), rtol=1e-6)
    a.close()


@pytest.mark.parametrize("num_envs", [1, 3])
def test_make_host_env_applies_wrappers_to_each_sub_env(num_envs):
    # The wrappers of training are those of evaluation (envs.gym_factory); one env keeps
    # the adapter's direct path.
    wrappers = ["FrameStackObservation:stack_size=2", "ClipReward:max_reward=0.5"]
    with make_host_env("CartPole-v1", num_envs, GAMMA, seed=0, wrappers=wrappers) as adapter:
        assert (adapter._single is not None) == (num_envs == 1)
        assert adapter.single_observation_space.shape == (2, 4)
        obs = adapter.reset()
        step = adapter.step(np.zeros(num_envs, np.int64))
    reference = gymnasium.make("CartPole-v1")
    first, _ = reference.reset(seed=0)
    second, *_ = reference.step(0)
    np.testing.assert_array_equal(obs[0], [first, first])  # padded with the reset obs
    np.testing.assert_array_equal(step.transition.obs_t[0], [first, second])
    np.testing.assert_array_equal(step.transition.r_t, np.full(num_envs, 0.5, np.float32))
    with pytest.raises(ValueError, match="--wrapper 'Nope': unknown wrapper"):
        make_host_env("CartPole-v1", 1, GAMMA, wrappers=["Nope"])
