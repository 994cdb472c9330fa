"""The import graph of `agents/` (module-level and in-function imports alike) has no cycles,
and `agents/dqn.py` is the DQN learner only."""

import ast
import pathlib

AGENTS = pathlib.Path(__file__).resolve().parents[2] / "agents"


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(AGENTS.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in AGENTS.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        edges = set()
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[:len(package.split(".")) - node.level
                                                        + 1] + ([base] if base else []))
                # `from package import submodule` depends on the submodule (running a
                # package's __init__ first is the parent relation, not an edge);
                # `from module import name` on the module
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules
                           else base for alias in node.names]
            else:
                continue
            edges |= {t for t in targets if t in modules and t != name}
        graph[name] = edges
    return graph


def _cycle(graph):
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt, stack + [nxt])
                if found:
                    return found
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node, [node])
            if found:
                return found
    return None


def test_agents_import_graph_has_no_cycles():
    graph = _graph()
    assert "agents.runner" in graph and "agents.host_loop" in graph
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_dqn_module_is_the_learner_and_host_loop_is_a_loop():
    graph = _graph()
    # the DQN module knows nothing of loops, runs, replay buffers or environments
    assert graph["agents.dqn"] <= {"agents.learner", "agents.replay_driver", "agents.base"}
    dqn_source = (AGENTS / "dqn.py").read_text()
    for word in ("replay.", "nstep", "lax.cond", "periodic_update", "epsilon_greedy"):
        assert word not in dqn_source, word
    # the reference host loop imports nothing of the runner or the fast path
    assert graph["agents.host_loop"] <= {"agents.base"}
