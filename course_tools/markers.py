"""nbgrader's marker regions, named and scanned in one place.

A source notebook hides things between pairs of marker lines: solutions, hidden
tests and mark schemes (nbgrader's own), and, inside a hidden test, the blocks
that compute expected values (the course's ``REFERENCE`` blocks, which the
grader removes before a student's kernel runs the test). A line opens or closes
a region when it contains the marker, as nbgrader's preprocessors decide.
Everything that reads or removes a region (releasing, selfcheck, publishing,
grading) goes through :func:`blocks` and :func:`remove`.
"""

from __future__ import annotations

from typing import Callable

MARKERS = {
    "solution": ("### BEGIN SOLUTION", "### END SOLUTION"),
    "hidden": ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"),
    "scheme": ("=== BEGIN MARK SCHEME ===", "=== END MARK SCHEME ==="),
    "reference": ("### BEGIN REFERENCE", "### END REFERENCE"),
}
NBGRADER_KINDS = ("solution", "hidden", "scheme")  # the regions nbgrader itself knows


def _scan(source: str, kind: str) -> list[tuple[str, str]]:
    """Each line of ``source`` with its role: ``begin``, ``end``, ``inside`` or ``outside``."""
    begin, end = MARKERS[kind]
    roles, inside = [], False
    for line in source.splitlines():
        if begin in line:
            inside = True
            roles.append(("begin", line))
        elif end in line:
            inside = False
            roles.append(("end", line))
        else:
            roles.append(("inside" if inside else "outside", line))
    return roles


def blocks(source: str, kind: str) -> list[list[str]]:
    """Each region of ``kind`` in ``source``, as its lines (markers excluded, unchanged otherwise)."""
    found: list[list[str]] = []
    for role, line in _scan(source, kind):
        if role == "begin":
            found.append([])
        elif role == "inside":
            found[-1].append(line)
    return found


def remove(source: str, kind: str, stand_in: Callable[[str], str] | None = None) -> str:
    """``source`` without its regions of ``kind``, markers included; ``stand_in(begin_line)``, if
    given, is written where each region was (a ``pass`` where a block was a loop's whole body)."""
    kept = []
    for role, line in _scan(source, kind):
        if role == "outside":
            kept.append(line)
        elif role == "begin" and stand_in is not None:
            kept.append(stand_in(line))
    return "\n".join(kept)
