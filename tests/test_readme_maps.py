"""The README's maps stay true: every module is on the map, every path the map names exists,
and every Markdown table has rows as wide as its header (the README's and the student kit's)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MAPPED_PACKAGES = ("course_utils", "course_tools", "deploy")
KIT_README = REPO / "course_tools" / "authoring" / "kit" / "README.md.in"


def code_map(readme: str) -> str:
    """The fenced block under "How it fits together": the map of the code."""
    section = readme.split("## How it fits together", 1)[1]
    return section.split("```", 2)[1]


def map_entries(block: str) -> list[str]:
    """Every path the map names, with its folder prefixes resolved from indentation.

    A line's first word is an entry (``course_tools/``, ``grading/``, ``job.py, execute.py``); an
    entry indented under a folder is inside it. Words after the column of descriptions are prose.
    """
    entries: list[str] = []
    stack: list[tuple[int, str]] = []  # (indent, folder path ending in /)
    for line in block.splitlines():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip(" "))
        head = re.split(r"\s{2,}", line.strip(), maxsplit=1)[0]
        if indent >= 20 and not re.match(r"^[\w./<>*-]+(, [\w./<>*-]+)*$", head):
            continue  # a description's continuation line
        while stack and stack[-1][0] >= indent:
            stack.pop()
        prefix = stack[-1][1] if stack else ""
        for name in (n.strip() for n in head.split(",")):
            entries.append(prefix + name)
            if name.endswith("/"):
                stack.append((indent, prefix + name))
    return entries


def modules_on_disk(root: Path) -> list[str]:
    """Every Python module of the mapped packages, as a path relative to ``root``."""
    found = []
    for package in MAPPED_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if "kit" in path.relative_to(root).parts or path.name == "__init__.py":
                continue  # the kit's templates are files of the kit, not modules
            found.append(path.relative_to(root).as_posix())
    return found


def unmapped(root: Path, readme: str) -> list[str]:
    """Modules that the map does not name (by path, or by a wildcard like ``given/<a>.py``)."""
    entries = map_entries(code_map(readme))
    patterns = [re.compile("^" + re.sub(r"<[^>]+>", r"[\\w]+", re.escape(e).replace(r"\<", "<").replace(r"\>", ">"))
                           + "$") for e in entries]
    return [m for m in modules_on_disk(root) if not any(p.match(m) for p in patterns)]


def missing(root: Path, readme: str) -> list[str]:
    """Paths the map names that do not exist (entries with a placeholder are checked by their folder;
    what the map says is "not committed" is made when the course runs, so it is not looked for)."""
    block = "\n".join(line for line in code_map(readme).splitlines() if "not committed" not in line)
    out = []
    for entry in map_entries(block):
        concrete = entry.split("<", 1)[0]
        if concrete and not (root / concrete).exists():
            out.append(entry)
    return out


def ragged_tables(text: str) -> list[str]:
    """Rows of Markdown tables (outside code fences) whose cell count differs from their header's."""
    problems, header, in_code = [], None, False
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            in_code = not in_code
        stripped = line.strip()
        if in_code or not stripped.startswith("|"):
            header = None
            continue
        cells = len(re.split(r"(?<!\\)\|", stripped.strip("|")))
        if header is None:
            header = cells
        elif cells != header:
            problems.append(f"line {number}: {cells} cells under a header of {header}")
    return problems


def test_every_module_is_on_the_map_and_every_mapped_path_exists() -> None:
    readme = (REPO / "README.md").read_text()
    assert unmapped(REPO, readme) == []
    assert missing(REPO, readme) == []


def test_the_map_test_notices_a_new_module_and_a_stale_entry(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text()
    for package in MAPPED_PACKAGES:
        (tmp_path / package).mkdir()
    for module in modules_on_disk(REPO):
        (tmp_path / module).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / module).write_text("")
    for rel in ("nbgrader_config.py", "notebooks", "tests", "benchmarks", "data", "grading"):
        target = tmp_path / rel
        target.mkdir() if "." not in rel else target.write_text("")
    (tmp_path / "course_tools" / "grading" / "newcomer.py").write_text("")
    (tmp_path / "course_tools" / "layout.py").unlink()
    assert set(unmapped(tmp_path, readme)) - set(unmapped(REPO, readme)) == {"course_tools/grading/newcomer.py"}
    assert set(missing(tmp_path, readme)) - set(missing(REPO, readme)) == {"course_tools/layout.py"}


def test_every_table_has_rows_as_wide_as_its_header() -> None:
    for path in (REPO / "README.md", KIT_README):
        assert ragged_tables(path.read_text()) == [], path


def test_the_table_test_notices_a_ragged_row() -> None:
    text = "| a | b |\n|---|---|\n| 1 | 2 |\n| 1 | 2 | 3 | 4 |\n\n```\n| not | a | table |\n```\n"
    assert ragged_tables(text) == ["line 4: 4 cells under a header of 2"]
