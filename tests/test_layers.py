"""The layout is the architecture: imports point down (CLI → deployments → flows → tasks → library), no cycles
(counting imports inside functions too).

``audio_evals/main.py`` is the one exception: the library's entry points into the layers above
(the reference tool's script and ``audio_evals.evaluate``), which import them when called.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLOORS = ["audio_evals", "tasks", "flows", "deployments", "cli"]  # bottom to top
ENTRY_POINTS = {"audio_evals.main"}


def _modules() -> dict[str, Path]:
    return {".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): path
            for floor in FLOORS for path in sorted((ROOT / floor).rglob("*.py"))}


def _imports(path: Path, modules: dict[str, Path]) -> list[str]:
    """What ``path`` imports, at its top or inside functions: ``from pkg import mod`` names ``pkg.mod``."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names += [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                      for a in node.names]
    return names


def test_imports_point_down_and_the_library_never_imports_prefect():
    upward = []
    modules = _modules()
    for module, path in modules.items():
        if module in ENTRY_POINTS:
            continue
        floor = FLOORS.index(module.split(".")[0])
        for name in _imports(path, modules):
            top = name.split(".")[0]
            if (top in FLOORS and FLOORS.index(top) > floor) or (floor == 0 and top == "prefect"):
                upward.append(f"{module} imports {name}")
    assert upward == []


def test_no_import_cycle():
    modules = _modules()
    graph = {m: {n for n in _imports(p, modules) if n in modules and n != m} if m not in ENTRY_POINTS else set()
             for m, p in modules.items()}  # the entry points import only when called, never at import
    cycles, done, stack = [], set(), []

    def visit(module: str) -> None:
        if module in stack:
            cycles.append(stack[stack.index(module):] + [module])
            return
        if module in done:
            return
        stack.append(module)
        for target in sorted(graph[module]):
            visit(target)
        stack.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)
    assert cycles == []


STAGES = ("download", "preprocess", "infer", "score", "report")


def test_each_stage_task_wraps_its_library_stage_one_to_one():
    """``tasks/X.py`` imports ``audio_evals/pipeline/X.py`` (the stage's code and cache), for each stage."""
    modules = _modules()
    for stage in STAGES:
        assert f"audio_evals.pipeline.{stage}" in modules, stage
        wrapped = {n for n in _imports(modules[f"tasks.{stage}"], modules) if n.startswith("audio_evals.pipeline.")}
        assert wrapped == {f"audio_evals.pipeline.{stage}"}, (stage, wrapped)


def test_inside_the_library_sources_sit_below_the_stages_and_the_spec_below_the_plan():
    """``data/`` (where samples come from) never imports the stages, the spine or the reports; the
    run's spec imports no plan, stage or report (it is the input record); the records import no
    other part of the library."""
    modules = _modules()
    rules = {"audio_evals.data": ("audio_evals.pipeline", "audio_evals.run", "audio_evals.report"),
             "audio_evals.run.spec": ("audio_evals.run.", "audio_evals.pipeline", "audio_evals.report",
                                      "audio_evals.models", "audio_evals.metrics"),
             "audio_evals.records": ("audio_evals.",)}
    found = [f"{module} imports {name}" for module, path in modules.items()
             for owner, banned in rules.items() if module == owner or module.startswith(owner + ".")
             for name in _imports(path, modules) if name.startswith(banned) and name != module]
    assert found == []
