"""``course validate NOTEBOOK``: a student's check before handing in, with an honest exit code.

Plain ``nbgrader validate`` exits 0 whether or not the visible tests pass (nbgrader #1908);
this one exits 0 only when every visible test passes, names each failing cell by its grade id
and shows what the failed check said (its message and hint, without the traceback).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from course_tools import assignments

PROBLEMS = (("type_changed", "a graded cell changed its type"),
            ("changed", "a test or read-only cell was edited; tests are restored when graded"),
            ("failed", "failed"))


def error_message(raw_error: str) -> list[str]:
    """What a failed cell says, without its traceback: the exception line and all that follows it
    (a check's "value -0.5 where 0.5 was expected" and its hint), or nbgrader's own note."""
    lines = re.sub(r"\x1b\[[0-9;]*m", "", raw_error).strip().splitlines()
    starts = [i for i, line in enumerate(lines) if re.match(r"^[A-Za-z_][\w.]*(:\s|:?$)", line)]
    return [line.rstrip() for line in lines[starts[-1]:]] if starts else lines[-1:]


def validate(path: Path) -> int:
    """Run ``path``'s visible tests as grading will; print what failed. 0: all pass, 1: some fail,
    2: not a notebook of an assignment (the message says what to do)."""
    import nbformat
    from nbgrader.validator import Validator

    from course_tools.config import load_config

    if not path.is_file():
        print(f"{path}: no such notebook", file=sys.stderr)
        return 2
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:  # noqa: BLE001 (invalid JSON and invalid structure raise different types)
        print(f"{path} is not a readable notebook ({exc.__class__.__name__}): restore it from your last "
              "checkpoint (File > Revert) or fetch a fresh copy of the assignment", file=sys.stderr)
        return 2
    if not any(assignments.is_test_cell(c) for c in nb.cells):
        print(f"{path} has no test cells: is it the assignment notebook?", file=sys.stderr)
        return 2
    results = Validator(config=load_config()).validate(str(path))
    names = {c.source: assignments.grade_id(c, i) for i, c in enumerate(nb.cells)}
    for kind, message in PROBLEMS:
        for cell in results.get(kind, []):
            print(f"{names.get(cell['source'], 'a cell')}: {message}")
            for line in error_message(cell.get("raw_error") or ""):
                print(f"  {line}")
    if results:
        print(f"{path}: NOT all visible tests pass", file=sys.stderr)
        return 1
    print(f"{path}: all visible tests pass (hidden tests run at grading)")
    return 0
