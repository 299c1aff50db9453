"""The house's import rules: who may import whom, read from the code itself.

- ``course_utils`` (what notebooks import) never imports ``course_tools`` (what TAs run);
- its core never imports ``course_utils.given``;
- a ``given/`` module imports only the core, never another assignment's module
  (its own helpers, ``given/<assignment>_<what>.py``, are part of it);
- the worker side of grading (job, execute, sandbox, tamper) never imports the
  coordinator, export or feedback;
- authoring and grading never import each other (they share ``course_tools``'
  top-level modules: layout, config, assignments, scratch).
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("course_utils", "course_tools")
WORKER_SIDE = {"course_tools.grading.job", "course_tools.grading.execute", "course_tools.grading.sandbox",
               "course_tools.grading.judge"}
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
            elif module.startswith("course_tools.authoring") and target.startswith("course_tools.grading"):
                why = "authoring never imports grading"
            elif module.startswith("course_tools.grading") and target.startswith("course_tools.authoring"):
                why = "grading never imports authoring"
            if why:
                problems.append(f"{module} -> {target}: {why}")
    return problems


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
        "course_tools/authoring/grade_too.py": "from course_tools.grading import coordinator\n",
        "course_tools/grading/checks_too.py": "from course_tools.authoring.selfcheck import selfcheck\n",
    }
    for rel, code in bad.items():
        path = tmp_path / rel
        path.write_text((path.read_text() if path.exists() else "") + code)
    problems = violations(tmp_path)
    assert len({p.split(" -> ")[0] for p in problems}) == len(bad), problems
    for rule in ("never imports course_tools", "never another assignment", "never imports given code",
                 "never imports the coordinator", "authoring never imports grading", "grading never imports authoring"):
        assert any(rule in p for p in problems), rule
    # a topic's own helper module is part of it
    assert not [p for p in violations(REPO) if "bert_finetuning_onnx" in p]
