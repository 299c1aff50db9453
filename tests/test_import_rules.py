"""The house's import rules: who may import whom, read from the code itself.

- ``course_utils`` (what notebooks import) never imports ``course_tools`` (what TAs run);
- its core never imports ``course_utils.given``;
- a ``given/`` module imports only the core, never another assignment's module
  (its own helpers, ``given/<assignment>_<what>.py``, are part of it);
- the worker side of grading (job, execute, sandbox, judge) never imports the
  coordinator, export or feedback;
- grading never imports authoring (authoring may use grading: selfcheck grades
  its variants as submissions);
- no module of ``course_tools`` is part of an import cycle, counting imports
  inside functions: a cycle hidden that way is still a cycle.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("course_utils", "course_tools")
WORKER_SIDE = {"course_tools.grading.job", "course_tools.grading.execute", "course_tools.grading.sandbox",
               "course_tools.grading.kernels", "course_tools.grading.zygote", "course_tools.grading.judge"}
COORDINATOR_SIDE = ("course_tools.grading.coordinator", "course_tools.grading.export", "course_tools.grading.feedback")


def modules(root: Path) -> dict[str, Path]:
    """Every module of the two packages under ``root``, by dotted name."""
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if not (path.parent / "__init__.py").is_file():
                continue  # a folder of templates or data, not part of the package
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imports(path: Path, known: set[str]) -> set[str]:
    """The course modules ``path`` imports, at any depth of the file (functions included)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out |= {f"{node.module}.{alias.name}" for alias in node.names if f"{node.module}.{alias.name}" in known}
    return {name for name in out if name.split(".")[0] in PACKAGES}


def _topic(module: str, assignments: set[str]) -> str:
    """The assignment a given module belongs to: ``given/bert_finetuning_onnx.py`` is ``bert_finetuning``'s."""
    leaf = module.split(".")[2]
    owners = [a for a in assignments if leaf == a or leaf.startswith(a + "_")]
    return max(owners, key=len) if owners else leaf


def violations(root: Path, assignments: set[str] | None = None) -> list[str]:
    """Every import that breaks a rule, as ``importer -> imported: rule``."""
    found = modules(root)
    assignments = assignments or {p.name for p in (REPO / "notebooks").iterdir() if p.is_dir()}
    problems = []
    for module, path in found.items():
        for target in sorted(imports(path, set(found))):
            why = None
            if module.startswith("course_utils") and target.startswith("course_tools"):
                why = "course_utils never imports course_tools"
            elif module.startswith("course_utils.given.") and target.startswith("course_utils.given."):
                if _topic(module, assignments) != _topic(target, assignments):
                    why = "a given module imports only the core, never another assignment's module"
            elif module.startswith("course_utils") and not module.startswith("course_utils.given") \
                    and target.startswith("course_utils.given"):
                why = "the core of course_utils never imports given code"
            elif module in WORKER_SIDE and target.startswith(COORDINATOR_SIDE):
                why = "the worker side of grading never imports the coordinator, export or feedback"
            elif module.startswith("course_tools.grading") and target.startswith("course_tools.authoring"):
                why = "grading never imports authoring"
            if why:
                problems.append(f"{module} -> {target}: {why}")
    problems += [f"{' -> '.join(cycle)}: no module of course_tools is part of an import cycle"
                 for cycle in cycles({m: imports(p, set(found)) for m, p in found.items()})
                 if any(m.startswith("course_tools") for m in cycle)]
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected group of modules that import each other
    (Tarjan's algorithm, iterative), as the path ``a -> b -> ... -> a``."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            nxt = next((t for t in edges if t in graph), None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == node:
                        break
                if len(group) > 1 or node in graph.get(node, ()):
                    groups.append(group)
    return [_path_through(group, graph) for group in groups]


def _path_through(group: set[str], graph: dict[str, set[str]]) -> list[str]:
    """A cycle inside ``group``, from its first module (by name) back to it."""
    start = min(group)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for target in sorted(graph[node] & group):
            if target == start:
                return paths[node] + [start]
            if target not in paths:
                paths[target] = paths[node] + [target]
                queue.append(target)
    return [start, start]


def test_the_house_follows_its_import_rules() -> None:
    assert violations(REPO) == []


def test_every_rule_catches_a_wrong_import(tmp_path: Path) -> None:
    for package in PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    bad = {
        "course_utils/plotting_extra.py": "from course_tools.layout import Course\n",
        "course_utils/given/vib_plots.py": "from course_utils.given import vae\n",
        "course_utils/given/maml.py": "def later():\n    import course_utils.given.nmt\n",
        "course_utils/repro_extra.py": "from course_utils.given import vae\n",
        "course_tools/grading/sandbox.py": "from course_tools.grading.export import rows\n",
        "course_tools/grading/loop_a.py": "def later():\n    from course_tools.grading import loop_b\n",
        "course_tools/grading/loop_b.py": "from course_tools.grading.loop_a import later\n",
        "course_tools/grading/checks_too.py": "from course_tools.authoring.selfcheck import selfcheck\n",
    }
    for rel, code in bad.items():
        path = tmp_path / rel
        path.write_text((path.read_text() if path.exists() else "") + code)
    problems = sorted(set(violations(tmp_path)) - set(violations(REPO)))
    for rel in bad:  # each wrong import is found (its module named in a problem)
        module = rel.removesuffix(".py").replace("/", ".")
        assert any(module in p for p in problems), (module, problems)
    for rule in ("never imports course_tools", "never another assignment", "never imports given code",
                 "never imports the coordinator", "grading never imports authoring", "part of an import cycle"):
        assert any(rule in p for p in problems), rule
    loop = next(p for p in problems if "cycle" in p and "loop_a" in p)
    assert loop.startswith("course_tools.grading.loop_a -> course_tools.grading.loop_b -> course_tools.grading.loop_a")
    # a topic's own helper module is part of it
    assert not [p for p in violations(REPO) if "bert_finetuning_onnx" in p]
