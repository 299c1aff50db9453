"""Mutants and alternatives: wrong answers the hidden tests must reject, right ones they must accept.

They live in ``tests/mutants/<assignment>.toml``, outside the assignment
folder, so nbgrader never releases them to students. Each one edits one
solution cell of the source notebook and names the test cells that must
lose points for it::

    [[mutant]]
    name = "variance_as_std"
    cell = "sample_gaussian"                # grade_id of the solution cell it edits
    targets = ["test_sample_gaussian"]      # test cells that must lose points
    why = "uses the variance where the standard deviation belongs"
    edits = [["torch.sqrt(v)", "v"]]        # [old, new] text replacements, applied in order
    # or: source = '''...'''                # the whole new cell

A mutant marked ``shortcut = true`` is the obvious way around writing the
answer: calling given code (``course_utils.given``) that does the same
thing. ``course selfcheck`` reports the shortcuts on a line of their own, and
every one must be rejected: no graded answer may be obtainable from the
package students install.

An edit whose ``old`` text is no longer in the solution makes the selfcheck
fail with a message, so mutants cannot silently go stale when a solution is
rewritten.

Alternatives, in the same file, are the other side: right answers written
differently from the solution (other library calls, another algebraic form,
another source of random numbers), which must earn full marks::

    [[alternative]]
    name = "numpy_noise"            # unique within the file
    cell = "sample_gaussian"        # grade_id of the autograded answer cell it replaces
    why = "draws the noise with numpy and wraps it as a tensor"
    code = '''
    def sample_gaussian(m, v):
        ...
    '''

``code`` is the whole source of that answer cell as a student would write it,
without solution markers; it replaces the cell of the released (student)
version. ``course selfcheck`` grades one *alternative variant* per rank: variant
k holds the k-th alternative of every cell that has at least k of them (in file
order), every other answer cell holds the solution's code, and every variant
must earn full marks on every autograded test cell. A hidden test that checks
how the solution did it (its random draws, its order of operations) rather
than what the task asks fails there, naming the alternative.
"""

from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass
import nbformat

from course_tools import assignments
from course_tools.layout import Course


@dataclass(frozen=True)
class Mutant:
    name: str
    cell: str
    targets: tuple[str, ...]
    why: str
    edits: tuple[tuple[str, str], ...] = ()
    source: str | None = None
    shortcut: bool = False  # calls given code instead of answering (see the module docstring)


@dataclass(frozen=True)
class Alternative:
    name: str
    cell: str
    why: str
    code: str


def _registered(assignment: str, course: Course | None, kind: str) -> tuple[str, list[dict]]:
    """The file's path (for messages) and its ``[[kind]]`` entries (none if the file does not exist)."""
    path = (course or Course.current()).mutants_file(assignment)
    if not path.is_file():
        return str(path), []
    return str(path), tomllib.loads(path.read_text()).get(kind, [])


def load_mutants(assignment: str, course: Course | None = None) -> list[Mutant]:
    """The registered mutants of an assignment (an empty list if it has none)."""
    path, entries = _registered(assignment, course, "mutant")
    mutants = []
    for entry in entries:
        mutants.append(
            Mutant(
                name=entry["name"],
                cell=entry["cell"],
                targets=tuple(entry["targets"]),
                why=entry.get("why", ""),
                edits=tuple((old, new) for old, new in entry.get("edits", [])),
                source=entry.get("source"),
                shortcut=bool(entry.get("shortcut", False)),
            )
        )
    names = [m.name for m in mutants]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: mutant names must be unique")
    return mutants


def load_alternatives(assignment: str, course: Course | None = None) -> list[Alternative]:
    """The registered alternatives of an assignment, in file order (an empty list if it has none).

    Raises ``ValueError`` for a missing key, a name used twice, or code that still holds
    nbgrader markers (a student's cell has none, and the release would reject them)."""
    path, entries = _registered(assignment, course, "alternative")
    found = []
    for entry in entries:
        missing = [key for key in ("name", "cell", "code") if not isinstance(entry.get(key), str)]
        if missing:
            raise ValueError(f"{path}: alternative {entry.get('name', '?')!r} needs {', '.join(missing)} (strings)")
        markers = [m for pair in assignments.MARKERS.values() for m in pair if m in entry["code"]]
        if markers:
            raise ValueError(f"{path}: alternative {entry['name']}: its code holds {markers[0]!r}; "
                             "write the cell as a student would, without markers")
        found.append(Alternative(entry["name"], entry["cell"], entry.get("why", ""), entry["code"]))
    names = [a.name for a in found]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: alternative names must be unique")
    return found


def alternative_variants(registered: list[Alternative]) -> list[list[Alternative]]:
    """Variant k (from 0 here) holds the k-th alternative of every cell that has more than k:
    as many variants as the most alternatives any one cell has, so they stay few to grade."""
    by_cell: dict[str, list[Alternative]] = {}
    for alternative in registered:
        by_cell.setdefault(alternative.cell, []).append(alternative)
    depth = max((len(found) for found in by_cell.values()), default=0)
    return [[found[k] for found in by_cell.values() if k < len(found)] for k in range(depth)]


def _answer_cells(notebook: nbformat.NotebookNode) -> dict[str, nbformat.NotebookNode]:
    """The code cells a student writes, by grade id (autograded answers and hand-graded code)."""
    return {c.metadata.nbgrader["grade_id"]: c for c in notebook.cells
            if c.cell_type == "code" and assignments.cell_kind(c) in ("autograded answer", "manual")}


def solved_code(source: str) -> str:
    """A solution cell as a student who wrote the solution would hand it in: its markers dropped."""
    markers = set(assignments.MARKERS["solution"])
    return "\n".join(line for line in source.splitlines() if line.strip() not in markers)


def apply_alternatives(source: nbformat.NotebookNode, release: nbformat.NotebookNode,
                       variant: list[Alternative]) -> nbformat.NotebookNode:
    """The release with every answer cell filled in: the variant's alternatives in their cells,
    the solution's code (without markers) in every other one.

    Raises ``ValueError`` when an alternative names no autograded answer cell of the release."""
    nb = copy.deepcopy(release)
    answers = _answer_cells(nb)
    solved = {gid: solved_code(cell.source) for gid, cell in _answer_cells(source).items()}
    chosen = {a.cell: a for a in variant}
    for alternative in variant:
        cell = answers.get(alternative.cell)
        if cell is None or assignments.cell_kind(cell) != "autograded answer":
            raise ValueError(f"alternative {alternative.name}: no autograded answer cell with grade_id "
                             f"{alternative.cell!r}")
    for gid, cell in answers.items():
        cell.source = chosen[gid].code.strip("\n") if gid in chosen else solved.get(gid, cell.source)
    return nb


def sample(registered: list[Mutant], per_test: int) -> list[Mutant]:
    """A proportionate subset for quick runs: every shortcut, and for each test cell the first
    ``per_test`` mutants (in file order) that target it, so every test cell still has to reject
    some wrong answer. The full set is what ``course selfcheck`` runs by default."""
    seen: dict[str, int] = {}
    kept = []
    for m in registered:
        if m.shortcut or any(seen.get(t, 0) < per_test for t in m.targets):
            kept.append(m)
            for t in m.targets:
                seen[t] = seen.get(t, 0) + 1
    return kept


def shortcut_line(registered: list[Mutant], rejected: set[str]) -> str | None:
    """The selfcheck's line about shortcuts through given code (None when none are registered):
    how many of them the hidden tests rejected, naming any that got through."""
    shortcuts = [m.name for m in registered if m.shortcut]
    if not shortcuts:
        return None
    missed = [name for name in shortcuts if name not in rejected]
    return (f"shortcuts through given code: {len(shortcuts) - len(missed)}/{len(shortcuts)} rejected"
            + (f" (NOT rejected: {', '.join(missed)})" if missed else ""))


def apply(notebook: nbformat.NotebookNode, mutant: Mutant) -> nbformat.NotebookNode:
    """A copy of ``notebook`` with the mutant's cell rewritten.

    Raises ``ValueError`` (with the reason) when the mutant does not apply.
    """
    nb = copy.deepcopy(notebook)
    cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == mutant.cell]
    if len(cells) != 1:
        raise ValueError(f"mutant {mutant.name}: no single cell with grade_id {mutant.cell!r}")
    cell = cells[0]
    new = cell.source
    if mutant.source is not None:
        new = mutant.source
    for old, replacement in mutant.edits:
        if old not in new:
            raise ValueError(
                f"mutant {mutant.name}: {old!r} is not in cell {mutant.cell!r} any more; "
                f"update tests/mutants/*.toml to match the new solution"
            )
        new = new.replace(old, replacement)
    if new == cell.source:
        raise ValueError(f"mutant {mutant.name}: changes nothing in cell {mutant.cell!r}")
    cell.source = new
    return nb
