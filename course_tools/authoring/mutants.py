"""Mutants: plausible wrong answers that the hidden tests must reject.

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
"""

from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass
import nbformat

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


def load_mutants(assignment: str, course: Course | None = None) -> list[Mutant]:
    """The registered mutants of an assignment (an empty list if it has none)."""
    path = (course or Course.current()).mutants_file(assignment)
    if not path.is_file():
        return []
    raw = tomllib.loads(path.read_text())
    mutants = []
    for entry in raw.get("mutant", []):
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
