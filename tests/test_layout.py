"""The package's shape: no import cycles (lazy and type-only imports count), no module that
outgrew one reading."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "worker"
MAX_LINES = 420


def modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        name = ".".join(("worker", *path.relative_to(ROOT).with_suffix("").parts))
        out[name.removesuffix(".__init__")] = path
    return out


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The worker modules this one imports, anywhere in it (functions and TYPE_CHECKING
    blocks included)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")
            if node.level > 1:
                base = base[:len(base) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                if f"{target}.{alias.name}" in known:
                    found.add(f"{target}.{alias.name}")
                elif target in known and target != name:
                    found.add(target)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in known}
    return found


def test_no_import_cycles() -> None:
    known = modules()
    graph = {name: imports(name, path, known) for name, path in known.items()}
    cycles = []

    def walk(start: str, node: str, path: list[str]) -> None:
        for nxt in graph[node]:
            if nxt == start:
                cycles.append(" -> ".join([*path, start]))
            elif nxt not in path and len(path) < 8:
                walk(start, nxt, [*path, nxt])

    for name in graph:
        walk(name, name, [name])
    assert cycles == []


def test_no_module_outgrew_one_reading() -> None:
    long = {name: n for name, path in modules().items()
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_the_stages_never_reach_into_the_runtime() -> None:
    """The runtime builds the stages from its parts; no stage imports it back (a stage that
    did could read anything through it, and its tests would need a whole runtime faked)."""
    known = modules()
    stages = ["worker.polling", "worker.pipeline", "worker.delivery", "worker.websub",
              "worker.stories", "worker.feedback", "worker.training", "worker.digest"]
    reaching = [name for name in stages if "worker.runtime" in imports(name, known[name], known)]
    assert reaching == []


def test_the_benches_import_what_exists() -> None:
    """Every name a bench script imports from the package, at the top or inside a function
    (where it is only read when that branch runs), exists: a moved function must not leave a
    bench that fails only when someone runs it."""
    import importlib

    missing = []
    for path in sorted((ROOT.parent / "bench").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("worker"):
                module = importlib.import_module(str(node.module))
                missing += [f"{path.name}: {node.module}.{a.name}" for a in node.names
                            if not hasattr(module, a.name)
                            and importlib.util.find_spec(f"{node.module}.{a.name}") is None]
            elif isinstance(node, ast.Import):
                missing += [f"{path.name}: {a.name}" for a in node.names
                            if a.name.startswith("worker")
                            and importlib.util.find_spec(a.name) is None]
    assert missing == []


def test_the_run_once_bench_runs_the_shipped_config_elsewhere(tmp_path: Path) -> None:
    """bench/run_once.py copies the shipped config into a throwaway folder: every path it
    names (seeds, models, training files) must still reach the same files, and only the data
    and the outbox move (a relative `model:` left behind made the bench fail on start)."""
    import importlib.util

    from worker.config import load_config

    spec = importlib.util.spec_from_file_location("run_once", ROOT.parent / "bench" /
                                                  "run_once.py")
    assert spec and spec.loader
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    copied = load_config(bench.config_in(tmp_path))
    shipped = load_config(ROOT.parent / "config" / "newswatch.yaml")
    assert [f.url for f in copied.feeds] == [f.url for f in shipped.feeds]
    for topic_id, topic in copied.topics.items():
        assert copied.resolve_path(topic.model) == shipped.resolve_path(
            shipped.topics[topic_id].model)
        assert copied.resolve_path(topic.model).is_file()
    assert copied.data_dir == tmp_path / "var"
