"""Tests for envs.gym_factory: wrapper strings (parsing, every error), wrappers applied in
order, spaces that agree between single envs, vector envs and `gym_spaces`, id mapping,
SAME_STEP autoreset."""

import json

import gymnasium
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv
from gymnasium.wrappers import ClipReward, FlattenObservation, FrameStackObservation

from envs.gym_factory import (
    WrapperSpec,
    apply_wrappers,
    as_wrappers,
    describe_space,
    gym_spaces,
    make_gym_env,
    make_gym_vector_env,
    parse_wrapper,
    resolve_gym_id,
    spaces_compatible,
    wrapper_strings,
)

HERE = "tests.envs.test_gym_factory"


class Tag(gymnasium.Wrapper):
    """Records its label, to see the order in which wrappers were applied."""

    def __init__(self, env, label="x"):
        super().__init__(env)
        self.label = label


def raises_type_error(env, scale=1.0):
    raise TypeError("scale must be a vector")


def returns_not_an_env(env):
    return 42


NOT_CALLABLE = 3


# ------------------------------------------------------------------------------ parsing


@pytest.mark.parametrize("text, target, kwargs", [
    ("FlattenObservation", "FlattenObservation", {}),
    ("FrameStackObservation:stack_size=4", "FrameStackObservation", {"stack_size": 4}),
    ("gymnasium.wrappers.ClipReward:min_reward=-1,max_reward=1.5",
     "gymnasium.wrappers.ClipReward", {"min_reward": -1, "max_reward": 1.5}),
    ("gymnasium.wrappers:ClipReward:min_reward=-1", "gymnasium.wrappers.ClipReward",
     {"min_reward": -1}),
    (f"{HERE}:Tag", f"{HERE}.Tag", {}),
    (" ReshapeObservation: shape=(2, 2) ", "ReshapeObservation", {"shape": (2, 2)}),
    ("FrameStackObservation:stack_size=2,padding_type=zero", "FrameStackObservation",
     {"stack_size": 2, "padding_type": "zero"}),
    (f"{HERE}.Tag:label='a,b=c'", f"{HERE}.Tag", {"label": "a,b=c"}),
    (f"{HERE}.Tag:label=true", f"{HERE}.Tag", {"label": True}),
    (f"{HERE}.Tag:label=None", f"{HERE}.Tag", {"label": None}),
    (f"{HERE}.Tag:label=-inf", f"{HERE}.Tag", {"label": -np.inf}),
    (f"{HERE}.Tag:label=1e-3", f"{HERE}.Tag", {"label": 0.001}),
    (f"{HERE}.Tag:label='4'", f"{HERE}.Tag", {"label": "4"}),
])
def test_parse_wrapper_reads_the_syntax_and_round_trips(text, target, kwargs):
    wrapper = parse_wrapper(text)
    assert wrapper == WrapperSpec(target, kwargs)
    assert all(type(wrapper.kwargs[k]) is type(v) for k, v in kwargs.items())
    assert parse_wrapper(str(wrapper)) == wrapper
    assert json.loads(json.dumps(wrapper_strings([wrapper]))) == [str(wrapper)]


def test_bare_dotted_and_entry_point_names_resolve_to_the_same_wrapper():
    for text in ["ClipReward", "gymnasium.wrappers.ClipReward", "gymnasium.wrappers:ClipReward"]:
        assert parse_wrapper(text).resolve() is ClipReward


@pytest.mark.parametrize("text, match", [
    # unknown wrapper
    ("Foo", r"unknown wrapper 'Foo' in gymnasium\.wrappers"),
    ("FrameStackObs:stack_size=4", "did you mean FrameStackObservation"),
    ("gymnasium.wrappers.Nope", r"unknown wrapper 'Nope' in gymnasium\.wrappers"),
    (f"{HERE}.Tga", f"unknown wrapper 'Tga' in {HERE} \\(did you mean Tag"),
    # module not importable
    ("tdkit_no_such_module.Wrapper", "module 'tdkit_no_such_module' is not importable"),
    ("tdkit_no_such_module.sub:Wrapper",
     "module 'tdkit_no_such_module.sub' of module:Name is not importable"),
    # not callable
    (f"{HERE}.NOT_CALLABLE", r"is not callable \(type int\)"),
    ("gymnasium.spaces", r"is not callable \(type module\)"),
    # bad syntax / bad key=value
    ("", "empty"),
    ("Flatten Observation", "is not a \\[module.\\]Name"),
    ("ClipReward:min_reward", "'min_reward' is not key=value"),
    ("ClipReward:min_reward=1,,", "'' is not key=value"),
    ("ClipReward:1=2", "'1=2' is not key=value"),
    ("ClipReward:min_reward=(1", "unbalanced brackets or quotes"),
    ("ClipReward:", "nothing after ':'"),
    ("ClipReward:min_reward=1,min_reward=2", "'min_reward' is given twice"),
    # keyword arguments the wrapper does not take
    ("FrameStackObservation:stak_size=4",
     "FrameStackObservation takes no argument 'stak_size'; it takes stack_size, padding_type"),
    ("FrameStackObservation", "missing a required argument: 'stack_size'"),
    ("FlattenObservation:x=1", "takes no argument 'x'; it takes no keyword arguments"),
])
def test_parse_wrapper_errors_are_one_line_and_name_the_flag(text, match):
    with pytest.raises(ValueError, match=match) as info:
        parse_wrapper(text)
    message = str(info.value)
    assert message.startswith("--wrapper") and "\n" not in message
    assert "expected" in message or "takes" in message or "twice" in message or (
        "unbalanced" in message)


@pytest.mark.parametrize("text, match", [
    ("FrameStackObservation:stack_size=0",
     r"FrameStackObservation\(env, stack_size=0\) failed on 'CartPole-v1': ValueError"),
    (f"{HERE}.raises_type_error:scale=2",
     r"raises_type_error\(env, scale=2\) failed on 'CartPole-v1': TypeError: scale must"),
    (f"{HERE}.returns_not_an_env", "returned type int, expected a gymnasium.Env"),
])
def test_wrapper_construction_failures_are_one_line_value_errors(text, match):
    wrapper = parse_wrapper(text)  # parses: the arguments fit the signature
    with pytest.raises(ValueError, match=match) as info:
        make_gym_env("CartPole-v1", wrappers=[wrapper])
    assert str(info.value).startswith(f"--wrapper '{text}'") and "\n" not in str(info.value)


def test_wrapper_lists_mix_strings_specs_and_callables_but_only_strings_are_recorded():
    mixed = as_wrappers(["FlattenObservation", parse_wrapper("ClipReward:max_reward=1"),
                         FlattenObservation])
    assert mixed[0] == WrapperSpec("FlattenObservation") and mixed[2] is FlattenObservation
    assert wrapper_strings(["FlattenObservation", WrapperSpec("ClipReward", {"max_reward": 1})]
                           ) == ["FlattenObservation", "ClipReward:max_reward=1"]
    with pytest.raises(ValueError, match="cannot record the wrapper"):
        wrapper_strings([FlattenObservation])
    with pytest.raises(ValueError, match=r"sequence of wrapper specs.*wrappers=\['Flatten"):
        as_wrappers("FlattenObservation")
    with pytest.raises(ValueError, match="expected a string .* or a callable env -> env"):
        as_wrappers([3])


# ------------------------------------------------------------------------------ order, spaces


def test_wrappers_are_applied_in_order_first_innermost():
    env = make_gym_env("CartPole-v1", wrappers=[f"{HERE}.Tag:label=inner", Tag])
    assert type(env) is Tag and env.label == "x" and env.env.label == "inner"
    env.close()
    # Order changes the spaces: stack then flatten [12] vs flatten then stack [3, 4].
    stack_then_flatten = ["FrameStackObservation:stack_size=3", "FlattenObservation"]
    assert gym_spaces("CartPole-v1", stack_then_flatten)[0].shape == (12,)
    assert gym_spaces("CartPole-v1", stack_then_flatten[::-1])[0].shape == (3, 4)
    env = apply_wrappers(gymnasium.make("CartPole-v1"), stack_then_flatten)
    assert isinstance(env, FlattenObservation) and isinstance(env.env, FrameStackObservation)


@pytest.mark.parametrize("wrappers, obs_shape", [
    ((), (4,)),
    (["FrameStackObservation:stack_size=3"], (3, 4)),
    (["FrameStackObservation:stack_size=3", "FlattenObservation"], (12,)),
])
def test_single_vector_and_gym_spaces_agree_under_wrappers(wrappers, obs_shape):
    single = make_gym_env("CartPole-v1", wrappers=wrappers)
    vector = make_gym_vector_env("CartPole-v1", 2, wrappers=wrappers)
    observation_space, action_space = gym_spaces("CartPole-v1", wrappers)
    assert observation_space.shape == obs_shape and action_space == spaces.Discrete(2)
    assert single.observation_space == observation_space == vector.single_observation_space
    assert single.action_space == action_space == vector.single_action_space
    # Sub-env i is seeded with seed + i, like a single env reset with that seed.
    obs, _ = vector.reset(seed=5)
    assert obs.shape == (2,) + obs_shape
    np.testing.assert_array_equal(obs[1], single.reset(seed=6)[0])
    single.close()
    vector.close()


def test_async_vector_env_with_string_wrappers_in_spawned_workers():
    wrappers = ["FrameStackObservation:stack_size=2", "ClipReward:max_reward=0.5"]
    env = make_gym_vector_env("CartPole-v1", 2, wrappers=wrappers, vectorization_mode="async")
    try:
        assert type(env) is AsyncVectorEnv and env.single_observation_space.shape == (2, 4)
        env.reset(seed=0)
        _, reward, *_ = env.step(np.zeros(2, np.int64))
        np.testing.assert_array_equal(reward, [0.5, 0.5])
    finally:
        env.close()


def test_env_options_and_time_limit_pass_through():
    env = make_gym_env("CartPole-v1", max_episode_steps=7, render_mode="rgb_array",
                       wrappers=["FlattenObservation"])
    assert env.spec.max_episode_steps == 7 and env.render_mode == "rgb_array"
    env.close()
    env = make_gym_env("tdkit/RandomWalk-v0", num_states=9)
    assert env.observation_space == spaces.Discrete(11)  # 9 states + 2 terminal
    env.close()


# ------------------------------------------------------------------------------ ids


def test_resolve_gym_id_maps_tdkit_ids_and_keeps_gymnasium_ids():
    assert resolve_gym_id("CartPole-v1") == "CartPole-v1"  # Gymnasium's own wins
    assert resolve_gym_id("RandomWalk-v0") == "tdkit/RandomWalk-v0"
    assert resolve_gym_id("tdkit/RandomWalk-v0") == "tdkit/RandomWalk-v0"
    assert resolve_gym_id("envs:tdkit/BoyanChain-v0") == "tdkit/BoyanChain-v0"
    env = make_gym_env("WindyGridworld-v0")
    assert env.spec.id == "tdkit/WindyGridworld-v0"
    env.close()
    vector = make_gym_vector_env("RandomWalk-v0", 2)
    assert vector.single_observation_space == gym_spaces("RandomWalk-v0")[0]
    vector.close()


@pytest.mark.parametrize("env_id, match", [
    ("CartPol-v1", "unknown Gymnasium environment 'CartPol-v1' \\(did you mean CartPole-v1"),
    ("NoSuchEnv-v0", "unknown Gymnasium environment 'NoSuchEnv-v0'"),
    ("tdkit_no_such_module:Env-v0", "module 'tdkit_no_such_module' is not importable"),
])
def test_unknown_ids_raise_one_line_value_errors(env_id, match):
    with pytest.raises(ValueError, match=match) as info:
        make_gym_env(env_id)
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------ vector envs


def test_vector_env_defaults_to_same_step_autoreset_with_the_true_final_obs():
    env = make_gym_vector_env("CartPole-v1", 2, max_episode_steps=3)
    assert type(env) is SyncVectorEnv
    assert env.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    reference = gymnasium.make("CartPole-v1")
    ref_obs, _ = reference.reset(seed=1)
    env.reset(seed=0)
    for _ in range(3):
        obs, _, terminated, truncated, info = env.step(np.zeros(2, np.int64))
        ref_obs, *_ = reference.step(0)
    assert truncated.all() and not terminated.any()
    # The step that ends the episode returns the reset observation and the final one apart.
    np.testing.assert_array_equal(info["final_obs"][1], ref_obs)
    assert not np.allclose(obs[1], ref_obs)
    env.close()
    next_step = make_gym_vector_env("CartPole-v1", 1, autoreset_mode="NextStep")
    assert next_step.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    next_step.close()


def test_bad_vector_arguments_raise():
    with pytest.raises(ValueError, match="num_envs"):
        make_gym_vector_env("CartPole-v1", 0)
    with pytest.raises(ValueError, match="vectorization_mode"):
        make_gym_vector_env("CartPole-v1", 1, vectorization_mode="threads")


# ------------------------------------------------------------------------------ spaces


def test_spaces_compatible_compares_structure_not_bounds():
    box = spaces.Box(-1.0, 1.0, (4,), np.float32)
    assert spaces_compatible(box, spaces.Box(-5.0, 5.0, (4,), np.float32))
    assert spaces_compatible(box, spaces.Box(-1.0, 1.0, (4,), np.float64))  # float64 -> 32
    assert not spaces_compatible(box, spaces.Box(-1.0, 1.0, (2,), np.float32))
    assert not spaces_compatible(box, spaces.Box(0, 255, (4,), np.uint8))
    assert not spaces_compatible(spaces.Discrete(2), spaces.Discrete(3))
    assert not spaces_compatible(spaces.Discrete(2), spaces.Discrete(2, start=1))
    assert not spaces_compatible(spaces.Discrete(4), box)
    assert spaces_compatible(spaces.MultiDiscrete([2, 3]), spaces.MultiDiscrete([2, 3]))
    assert not spaces_compatible(spaces.MultiDiscrete([2, 3]), spaces.MultiDiscrete([3, 3]))
    assert describe_space(box) == "Box(shape=(4,), dtype=float32)"
    assert describe_space(spaces.Discrete(3)) == "Discrete(3)"
    assert describe_space(spaces.MultiDiscrete([2, 3])) == "MultiDiscrete([2, 3])"
