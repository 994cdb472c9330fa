"""One factory for every Gymnasium env tdkit makes: spaces, training, evaluation, video.

    wrappers = ["FrameStackObservation:stack_size=4"]             # as given to --wrapper
    env = make_gym_env("CartPole-v1", wrappers=wrappers)          # one env: video, checks
    vector_env = make_gym_vector_env("CartPole-v1", 8, wrappers=wrappers)   # training, eval
    observation_space, action_space = gym_spaces("CartPole-v1", wrappers)   # [4, 4], 2

Ids: `resolve_gym_id` maps an id to the Gymnasium id to make: Gymnasium's own id when it
exists (`CartPole-v1`), else tdkit's registration (`RandomWalk-v0` -> `tdkit/RandomWalk-v0`);
`"module:Env-v0"` imports `module` first (which registers its envs). An env that needs a
missing optional package fails at once with a one-line `MissingDependencyError` (a
`ValueError`) naming the extra: `HalfCheetah-v5` without MuJoCo says
`pip install 'tdkit[mujoco]'`. Atari ids (`ALE/Pong-v5`, `PongNoFrameskip-v4`) are registered
by importing ale-py, done on their first use (`pip install 'tdkit[atari]'`; see `envs.atari`).

Wrappers: `wrappers` is a sequence of wrapper specs, applied in order to EACH single env
(the first wraps the env `gymnasium.make` returns, the last is outermost), the same way for
training, evaluation and video, so their spaces always agree. A spec is a callable
`env -> env`, a `WrapperSpec`, or a string (as given to `--wrapper`):

    [module.]Name[:key=value,...]

- `Name` alone is looked up in `gymnasium.wrappers`: `"FlattenObservation"`,
  `"FrameStackObservation:stack_size=4"`.
- `module.Name` (or `module:Name`) imports `module`:
  `"gymnasium.wrappers.ClipReward:min_reward=-1,max_reward=1"`, `"mypkg.wrappers.MyWrapper"`,
  `"mypkg.wrappers:MyWrapper:scale=0.5"`.
- The target is called as `target(env, **kwargs)` and must return a `gymnasium.Env`.
- Values are Python literals (`4`, `-1.0`, `1e-3`, `True`, `None`, `'text'`, `(84, 84)`);
  `true` / `false` / `none` in any case are booleans / None, `inf` / `nan` are floats, and
  anything else is the string as written (`padding_type=zero`). Commas inside brackets or
  quotes do not separate arguments.

`parse_wrapper` checks a string at once (the target is imported and the keyword arguments
are bound to its signature), so a bad `--wrapper` fails before any env is made, with a
one-line `ValueError` that starts with `--wrapper '<spec>':`. `str(WrapperSpec)` is its
canonical string, and `wrapper_strings(wrappers)` gives the JSON list a run's config records
(`parse_wrapper(str(spec)) == spec`).
"""

import ast
import dataclasses
import difflib
import functools
import importlib
import inspect
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium
import jax
import numpy as np
from gymnasium import spaces
from gymnasium.envs.registration import EnvSpec
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv

SYNTAX = "[module.]Name[:key=value,...]"
"""The syntax of a wrapper string."""

_CONSTRUCTION_ERRORS = (TypeError, ValueError, AssertionError, gymnasium.error.Error)

# Gymnasium environments that need an optional package: (entry-point module prefix, module to
# import, its name in messages, the tdkit extra that installs it).
_OPTIONAL_DEPENDENCIES = (
    ("gymnasium.envs.mujoco.", "mujoco", "MuJoCo", "mujoco"),  # the v4 / v5 MuJoCo ids
    ("ale_py.", "ale_py", "ale-py (Atari)", "atari"),  # ALE/Pong-v5, PongNoFrameskip-v4
)
# Optional packages that register their ids when imported (imported on the first id that is
# not registered yet): (module, the ids that certainly need it, as a regular expression).
_REGISTERED_ON_IMPORT = (
    ("ale_py", re.compile(r"ALE/.+|.+(NoFrameskip|Deterministic)-v[04]")),
)


class MissingDependencyError(gymnasium.error.DependencyNotInstalled, ValueError):
    """An environment needs an optional package that is not installed; the one-line message
    names the tdkit extra to install. A `ValueError`, like the factory's other errors."""


# ---------------------------------------------------------------------------- wrappers


@dataclasses.dataclass(frozen=True)
class WrapperSpec:
    """A Gymnasium wrapper named by a string: called as `target(env, **kwargs)`.

    Build one with `parse_wrapper("FrameStackObservation:stack_size=4")`; applying it to an
    env (`spec(env)`) imports the target and wraps the env. `str(spec)` is the canonical
    string (`"FrameStackObservation:stack_size=4"`), which `parse_wrapper` reads back.

    Attributes:
      target: a name in `gymnasium.wrappers` (`"FrameStackObservation"`) or a dotted path
        (`"mypkg.wrappers.MyWrapper"`).
      kwargs: keyword arguments of the call, JSON-like values.
    """

    target: str
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __str__(self) -> str:
        if not self.kwargs:
            return self.target
        args = ",".join(f"{key}={_format_value(value)}" for key, value in self.kwargs.items())
        return f"{self.target}:{args}"

    def resolve(self) -> Callable[..., Any]:
        """The wrapper class or function named by `target` (imported now)."""
        return _resolve_target(self.target, str(self))

    def __call__(self, env: gymnasium.Env) -> gymnasium.Env:
        """Wraps `env`; a failing construction raises a one-line `ValueError`."""
        target = self.resolve()
        try:
            wrapped = target(env, **self.kwargs)
        except _CONSTRUCTION_ERRORS as error:
            raise ValueError(
                f"--wrapper {str(self)!r}: {self.target}(env, {_call_args(self.kwargs)}) "
                f"failed on {_env_name(env)}: {type(error).__name__}: {_one_line(error)}"
            ) from error
        if not isinstance(wrapped, gymnasium.Env):
            raise ValueError(
                f"--wrapper {str(self)!r}: {self.target} returned type {type(wrapped).__name__}, "
                "expected a gymnasium.Env (a wrapper class or a function env -> env)")
        return wrapped


def parse_wrapper(spec: str) -> WrapperSpec:
    """Parses and checks a wrapper string `[module.]Name[:key=value,...]` (see the module).

    Args:
      spec: e.g. `"FrameStackObservation:stack_size=4"`,
        `"gymnasium.wrappers.ClipReward:min_reward=-1,max_reward=1"`,
        `"mypkg.wrappers:MyWrapper"`.

    Returns:
      A `WrapperSpec`: a callable `env -> env`, whose `str` is the canonical string.

    Raises:
      ValueError (one line, naming `--wrapper`): bad syntax, a bad `key=value`, an unknown
        wrapper, a module that cannot be imported, a target that is not callable, or
        keyword arguments the target does not take.
    """
    if not isinstance(spec, str):
        raise ValueError(f"--wrapper: expected a string {SYNTAX}, got {spec!r}")
    text = spec.strip()
    if not text:
        raise ValueError(f"--wrapper {spec!r}: empty; expected {SYNTAX}")
    head, colon, rest = text.partition(":")
    entry_name, _, entry_rest = rest.partition(":")
    entry_point = bool(colon) and entry_name.isidentifier()  # "module:Name[:args]"
    target = f"{head}.{entry_name}" if entry_point else head
    arg_text = entry_rest if entry_point else rest
    names = target.split(".")
    if not all(name.isidentifier() for name in names):
        raise ValueError(
            f"--wrapper {spec!r}: {target!r} is not a [module.]Name; expected {SYNTAX}, "
            "e.g. FrameStackObservation:stack_size=4")
    import_error = _import_error(head) if entry_point else None
    if import_error is not None:
        # "ClipReward:min_reward" is a forgotten "=" more often than a module "ClipReward".
        raise ValueError(
            f"--wrapper {spec!r}: {entry_name!r} is not key=value, and module {head!r} of "
            f"module:Name is not importable ({import_error}); expected {SYNTAX}")
    kwargs = _parse_kwargs(arg_text, spec) if colon and arg_text.strip() else {}
    if colon and not arg_text.strip() and not entry_point:
        raise ValueError(f"--wrapper {spec!r}: nothing after ':'; expected {SYNTAX}")
    wrapper = WrapperSpec(target, kwargs)
    _check_arguments(_resolve_target(target, spec), kwargs, spec, target)
    return wrapper


def as_wrappers(wrappers: Sequence[Any]) -> tuple[Callable[[gymnasium.Env], gymnasium.Env], ...]:
    """Wrapper specs (strings, `WrapperSpec`s, callables) as a tuple of callables, checked.

    Raises:
      ValueError: a string is not a valid wrapper (see `parse_wrapper`), an entry is not
        callable, or `wrappers` is a single string instead of a sequence.
    """
    if isinstance(wrappers, (str, bytes)):
        raise ValueError(
            f"wrappers must be a sequence of wrapper specs, got the string {wrappers!r}; "
            f"write wrappers=[{wrappers!r}]")
    result = []
    for wrapper in wrappers:
        if isinstance(wrapper, str):
            wrapper = parse_wrapper(wrapper)
        elif not callable(wrapper):
            raise ValueError(
                f"--wrapper: expected a string {SYNTAX} or a callable env -> env, "
                f"got {wrapper!r}")
        result.append(wrapper)
    return tuple(result)


def wrapper_strings(wrappers: Sequence[Any]) -> list[str]:
    """The canonical strings of wrapper specs, for a run's config.json (JSON list of str).

    Raises:
      ValueError: a wrapper is a plain callable, which no string can rebuild.
    """
    strings = []
    for wrapper in as_wrappers(wrappers):
        if not isinstance(wrapper, WrapperSpec):
            raise ValueError(
                f"cannot record the wrapper {wrapper!r} as a string; give wrappers as "
                f"{SYNTAX} strings (or WrapperSpec) so that the run can be rebuilt")
        strings.append(str(wrapper))
    return strings


def apply_wrappers(env: gymnasium.Env, wrappers: Sequence[Any]) -> gymnasium.Env:
    """`env` wrapped by each wrapper in turn (`wrappers[0]` innermost, `wrappers[-1]` outermost)."""
    for wrapper in as_wrappers(wrappers):
        env = wrapper(env)
    return env


def _parse_kwargs(text: str, spec: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    for item in _split_top_level(text, spec):
        key, equals, value = item.partition("=")
        key = key.strip()
        if not equals or not key.isidentifier():
            raise ValueError(
                f"--wrapper {spec!r}: {item.strip()!r} is not key=value (key a Python "
                f"name); expected {SYNTAX}")
        if key in kwargs:
            raise ValueError(f"--wrapper {spec!r}: {key!r} is given twice")
        kwargs[key] = _parse_value(value.strip())
    return kwargs


def _split_top_level(text: str, spec: str) -> list[str]:
    """Splits at commas outside brackets and quotes."""
    items, depth, quote, start = [], 0, "", 0
    for i, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    if quote or depth != 0:
        raise ValueError(f"--wrapper {spec!r}: unbalanced brackets or quotes in {text!r}")
    return items


def _parse_value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "none":
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    try:
        return float(text)  # inf, -inf, nan
    except ValueError:
        return text


def _format_value(value: Any) -> str:
    """The text `_parse_value` reads back as `value`."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # 'inf', '-inf', 'nan'
    if isinstance(value, str) and value and value == value.strip() and not any(
            c in value for c in ",=:()[]{}'\"") and _parse_value(value) == value:
        return value
    return repr(value)


def _import_error(module: str) -> str | None:
    """None if `module` imports, else why not (one line)."""
    try:
        importlib.import_module(module)
    except Exception as error:  # noqa: BLE001  (any failure: not a module to use)
        return f"{type(error).__name__}: {_one_line(error)}"
    return None


def _resolve_target(target: str, spec: str) -> Callable[..., Any]:
    names = target.split(".")
    if len(names) == 1:
        module, module_name, attributes = gymnasium.wrappers, "gymnasium.wrappers", names
    else:
        module, missing = None, ""
        for i in range(len(names) - 1, 0, -1):
            module_name = ".".join(names[:i])
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as error:
                if error.name and (module_name == error.name
                                   or module_name.startswith(error.name + ".")):
                    missing = missing or _one_line(error)
                    continue  # this prefix is not a module; try a shorter one
                raise ValueError(
                    f"--wrapper {spec!r}: module {module_name!r} is not importable "
                    f"(ModuleNotFoundError: {_one_line(error)})") from error
            except Exception as error:  # noqa: BLE001  (an import that fails, any reason)
                raise ValueError(
                    f"--wrapper {spec!r}: module {module_name!r} is not importable "
                    f"({type(error).__name__}: {_one_line(error)})") from error
            attributes = names[i:]
            break
        if module is None:
            raise ValueError(
                f"--wrapper {spec!r}: module {'.'.join(names[:-1])!r} is not importable "
                f"(ModuleNotFoundError: {missing}); expected {SYNTAX} with an importable "
                "module, or a bare Name from gymnasium.wrappers")
    obj: Any = module
    for depth, attribute in enumerate(attributes):
        try:
            obj = getattr(obj, attribute)
        except AttributeError:
            owner = ".".join([module_name, *attributes[:depth]])
            public = [n for n in dir(obj) if not n.startswith("_")]
            close = difflib.get_close_matches(attribute, public, n=3, cutoff=0.6)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ValueError(
                f"--wrapper {spec!r}: unknown wrapper {attribute!r} in {owner}{hint}; expected "
                f"{SYNTAX}, where a bare Name is one of gymnasium.wrappers (e.g. "
                "FlattenObservation, FrameStackObservation, ClipReward)") from None
    if not callable(obj):
        raise ValueError(
            f"--wrapper {spec!r}: {target} is not callable (type {type(obj).__name__}); expected "
            "a wrapper class or a function env -> env")
    return obj


def _check_arguments(target: Callable[..., Any], kwargs: Mapping[str, Any], spec: str,
                     name: str) -> None:
    """Binds `(env, **kwargs)` to the target's signature (when it has one)."""
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return
    parameters = list(signature.parameters.values())[1:]  # after the env
    takes = (f"it takes {', '.join(p.name for p in parameters)}" if parameters
             else "it takes no keyword arguments")
    if not any(p.kind == p.VAR_KEYWORD for p in parameters):
        names = {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        unknown = [key for key in kwargs if key not in names]
        if unknown:
            raise ValueError(
                f"--wrapper {spec!r}: {name} takes no argument {unknown[0]!r}; {takes}")
    try:
        signature.bind(None, **kwargs)
    except TypeError as error:
        raise ValueError(
            f"--wrapper {spec!r}: bad arguments for {name}: {_one_line(error)}; {takes}"
        ) from None


def _call_args(kwargs: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}={value!r}" for key, value in kwargs.items())


def _one_line(error: BaseException) -> str:
    text = str(error).strip()
    return " ".join(text.split()) if text else type(error).__name__


def _env_name(env: gymnasium.Env) -> str:
    spec = getattr(env, "spec", None)
    return repr(spec.id) if spec is not None else type(env).__name__


# ---------------------------------------------------------------------------- ids


def resolve_gym_id(env_id: str) -> str:
    """The Gymnasium id to make for `env_id`.

    Gymnasium's own id when it is registered (`"CartPole-v1"`), else tdkit's registration
    (`"RandomWalk-v0"` -> `"tdkit/RandomWalk-v0"`; importing `envs` registers the `tdkit/`
    ids). `"module:Env-v0"` imports `module` (which registers `Env-v0`) and returns
    `"Env-v0"`, except `"gymnax:<id>"`, returned as it is (a gymnax environment through
    `envs.make`, wrapped as a `gymnasium.Env`).

    Raises:
      ValueError: no such environment (Gymnasium's reason, with close matches), or the
        module of `"module:Env-v0"` cannot be imported.
    """
    if not isinstance(env_id, str) or not env_id:
        raise ValueError(f"expected a Gymnasium environment id, got {env_id!r}")
    if env_id in gymnasium.registry or env_id.startswith("gymnax:"):
        return env_id  # gymnax ids: made by `_env_spec` from tdkit's wrapping of gymnax
    if ":" in env_id:
        module, _, env_id = env_id.partition(":")
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise ValueError(
                f"environment '{module}:{env_id}': module {module!r} is not importable "
                f"({type(error).__name__}: {_one_line(error)})") from error
        if env_id in gymnasium.registry:
            return env_id
    import envs  # noqa: F401  (registers the tdkit/ ids)

    tdkit_id = f"tdkit/{env_id.removeprefix('tdkit/')}"
    if tdkit_id in gymnasium.registry:
        return tdkit_id
    if _register_optional_envs(env_id):
        return env_id
    try:
        gymnasium.spec(env_id)
    except gymnasium.error.Error as error:
        reason = _one_line(error)
    else:  # pragma: no cover  (registered meanwhile)
        return env_id
    close = difflib.get_close_matches(env_id, list(gymnasium.registry), n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise ValueError(f"unknown Gymnasium environment {env_id!r}{hint}: {reason}")


def _register_optional_envs(env_id: str) -> bool:
    """Imports the installed packages of `_REGISTERED_ON_IMPORT` (which registers their ids);
    whether `env_id` is registered now. Raises `MissingDependencyError` for an id of a
    package that does not import."""
    for module, ids in _REGISTERED_ON_IMPORT:
        if _import_error(module) is None:
            if env_id in gymnasium.registry:
                return True
        elif ids.fullmatch(env_id):
            name, extra = next((name, extra) for _, m, name, extra in _OPTIONAL_DEPENDENCIES
                               if m == module)
            raise MissingDependencyError(
                f"environment {env_id!r} needs {name}: pip install 'tdkit[{extra}]' "
                f"(or pip install '.[{extra}]')")
    return False


def _env_spec(env_id: str) -> EnvSpec:
    if isinstance(env_id, str) and env_id.startswith("gymnax:"):
        return _gymnax_spec(env_id)
    spec = gymnasium.spec(resolve_gym_id(env_id))
    _check_dependencies(spec)
    return spec


def _gymnax_spec(env_id: str) -> EnvSpec:
    """A Gymnasium spec of a gymnax environment (`"gymnax:<id>"`): tdkit's JAX wrapping of it
    (`envs.make`) as a `gymnasium.Env`, with its time limit as Gymnasium's `TimeLimit`, so
    evaluation and video run the same dynamics as the jitted loop."""
    import functools

    import envs

    _, params = envs.make(env_id)  # one-line errors: unknown id, gymnax missing
    return EnvSpec(id=env_id, entry_point=functools.partial(_make_gymnax_gymnasium, env_id),
                   max_episode_steps=int(params.max_steps))


def _make_gymnax_gymnasium(env_id: str, render_mode: str | None = None) -> gymnasium.Env:
    import envs
    from envs.gym_wrapper import GymnasiumEnv

    env, params = envs.make(env_id)
    return GymnasiumEnv(env, params, render_mode=render_mode)


def _check_dependencies(spec: EnvSpec) -> None:
    """Raises `MissingDependencyError` (one line, naming the extra) before `gymnasium.make`
    would fail deep inside the env's module (or inside an async worker)."""
    entry_point = spec.entry_point if isinstance(spec.entry_point, str) else ""
    for prefix, module, name, extra in _OPTIONAL_DEPENDENCIES:
        if entry_point.startswith(prefix) and _import_error(module) is not None:
            raise MissingDependencyError(
                f"environment {spec.id!r} needs {name}: pip install 'tdkit[{extra}]' "
                f"(or pip install '.[{extra}]')")


# ---------------------------------------------------------------------------- factory


def _make_single(spec: EnvSpec, wrappers: tuple, render_mode: str | None,
                 max_episode_steps: int | None, kwargs: Mapping[str, Any]) -> gymnasium.Env:
    if render_mode is not None:
        kwargs = {**kwargs, "render_mode": render_mode}
    env = gymnasium.make(spec, max_episode_steps=max_episode_steps, **kwargs)
    return apply_wrappers(env, wrappers) if wrappers else env


def make_gym_env(env_id: str, *, wrappers: Sequence[Any] = (), render_mode: str | None = None,
                 max_episode_steps: int | None = None, **kwargs: Any) -> gymnasium.Env:
    """One Gymnasium env, wrapped.

    Args:
      env_id: a Gymnasium id (mapped with `resolve_gym_id`: tdkit ids work unprefixed).
      wrappers: wrapper specs applied in order (see the module): strings
        `[module.]Name[:key=value,...]`, `WrapperSpec`s or callables `env -> env`.
      render_mode: e.g. `"rgb_array"`, passed to `gymnasium.make` (None: not passed).
      max_episode_steps: optional time limit (truncation) replacing the registered one.
      **kwargs: passed to `gymnasium.make` (the env's constructor options).

    Returns:
      The env; `close()` it when done.
    """
    wrappers = as_wrappers(wrappers)
    return _make_single(_env_spec(env_id), wrappers, render_mode, max_episode_steps, kwargs)


def make_gym_vector_env(
    env_id: str,
    num_envs: int,
    *,
    wrappers: Sequence[Any] = (),
    autoreset_mode: AutoresetMode | str = AutoresetMode.SAME_STEP,
    vectorization_mode: str = "sync",
    context: str | None = "spawn",
    render_mode: str | None = None,
    max_episode_steps: int | None = None,
    **kwargs: Any,
) -> VectorEnv:
    """N copies of one Gymnasium env, each wrapped by `wrappers`, as a vector env.

    Args:
      env_id: a Gymnasium id (mapped with `resolve_gym_id`).
      num_envs: N, a positive int.
      wrappers: wrapper specs applied in order to each single env (see `make_gym_env`).
      autoreset_mode: defaults to `SAME_STEP` (the step that ends an episode returns the
        reset observation and `info["final_obs"]`); `NEXT_STEP` is Gymnasium's default.
      vectorization_mode: `"sync"` (a `SyncVectorEnv`: sub-envs stepped in turn in this
        process) or `"async"` (an `AsyncVectorEnv`: one worker process per sub-env).
      context: multiprocessing start method for `"async"`; "spawn" (default) is safe with
        JAX's threads, unlike "fork"; scripts then need `if __name__ == "__main__":`.
      render_mode, max_episode_steps, **kwargs: as in `make_gym_env`.

    Returns:
      A `SyncVectorEnv` or `AsyncVectorEnv` (not wrapped), with
      `single_observation_space` / `single_action_space` those of `make_gym_env`. Seed it
      with `reset(seed=s)` (sub-env i gets `s + i`); `close()` it when done.
    """
    if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs <= 0:
        raise ValueError(f"make_gym_vector_env: `num_envs` must be a positive int, "
                         f"got {num_envs!r}")
    if vectorization_mode not in ("sync", "async"):
        raise ValueError(f"make_gym_vector_env: `vectorization_mode` must be 'sync' or "
                         f"'async', got {vectorization_mode!r}")
    mode = AutoresetMode(autoreset_mode)
    wrappers = as_wrappers(wrappers)
    # Resolve the spec here, so that workers started with "spawn" need no registration.
    spec = _env_spec(env_id)
    if wrappers or render_mode is not None:
        make = functools.partial(_make_single, spec, wrappers, render_mode,
                                 max_episode_steps, dict(kwargs))
    else:  # a plain gymnasium.make: spawned workers need not import tdkit
        make = functools.partial(gymnasium.make, spec, max_episode_steps=max_episode_steps,
                                 **kwargs)
    env_fns = [make] * num_envs
    if vectorization_mode == "async":
        return AsyncVectorEnv(env_fns, context=context, autoreset_mode=mode)
    return SyncVectorEnv(env_fns, autoreset_mode=mode)


def gym_spaces(env_id: str, wrappers: Sequence[Any] = (), **kwargs: Any
               ) -> tuple[spaces.Space, spaces.Space]:
    """`(observation_space, action_space)` of ONE env as `make_gym_env` makes it.

    Equal to a vector env's `single_observation_space` / `single_action_space` with the
    same wrappers. `**kwargs` as in `make_gym_env`.
    """
    env = make_gym_env(env_id, wrappers=wrappers, **kwargs)
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


# ---------------------------------------------------------------------------- spaces


def spaces_compatible(expected: spaces.Space, actual: spaces.Space) -> bool:
    """Whether an agent built for `expected` can act on `actual`: the same kind of space,
    shape and (JAX-canonical) dtype, and for discrete spaces the same sizes and starts.
    Box bounds may differ."""
    if type(expected) is not type(actual):
        return False
    if isinstance(expected, spaces.Discrete):
        return int(expected.n) == int(actual.n) and int(expected.start) == int(actual.start)
    if isinstance(expected, spaces.MultiDiscrete):
        return (np.array_equal(expected.nvec, actual.nvec)
                and np.array_equal(expected.start, actual.start))
    if isinstance(expected, (spaces.Box, spaces.MultiBinary)):
        return (tuple(expected.shape) == tuple(actual.shape)
                and _canonical(expected.dtype) == _canonical(actual.dtype))
    return expected == actual


def describe_space(space: spaces.Space) -> str:
    """A short one-line description: `Box(shape=(4,), dtype=float32)`, `Discrete(2)`."""
    if isinstance(space, spaces.Box):
        return f"Box(shape={tuple(space.shape)}, dtype={space.dtype})"
    if isinstance(space, spaces.MultiDiscrete):
        return f"MultiDiscrete({np.asarray(space.nvec).tolist()})"
    return " ".join(str(space).split())


def _canonical(dtype: Any) -> np.dtype:
    return np.dtype(jax.dtypes.canonicalize_dtype(dtype))
