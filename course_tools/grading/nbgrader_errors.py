"""nbgrader's failures read in one place: what its API answers when a step fails, in words a
person can act on.

nbgrader's API calls (``autograde``, ``generate_assignment``, ``generate_feedback``) answer a
failure with a dict whose ``error`` field often only says "see the above traceback"; the cause is
in its ``log``: the warnings nbgrader logged before giving up, then the exception. Grading reads
them with :func:`explain` (a submission's known faults, with the fix a student can make); a
command that releases or builds feedback reads them with :func:`cause` (the exception alone).
"""

from __future__ import annotations

import re
from typing import Mapping

_EXPLAINED = (
    (r"Cell with id '([^']+)' exists multiple times", "two cells carry the grade id {0} (a graded cell was copied)"),
    (r"Cell '([^']+)' does not exist in the database", "the cell {0} is not part of the released assignment "
                                                        "(a graded cell's grade id was changed)"),
    # only a changed kind of cell: a changed checksum or points value is routine (nbgrader restores the
    # released source and points and warns), never the cause of a failure
    (r"Attribute '(cell_type|locked)' for cell (\S+) has changed", "the cell {1} was turned into another kind of "
                                                                    "cell (its nbgrader attribute '{0}' differs "
                                                                    "from the release)"),
    (r"Inconsistent checksums for cell (\S+)", "the cell {0} was edited in a way nbgrader cannot restore"),
)
_LAST_RESORT = (r"KeyError: 'grade_id'", "a graded cell lost its grade id (its nbgrader metadata was edited)")
_FIX = "Fix: copy the answers into a freshly fetched copy of the assignment and submit that"
_GENERIC = ("Please see the", "There was an error processing", "Traceback (most recent call last)")
_KEEP = 10_000  # characters kept of each end of a long log


def failure_text(result: Mapping[str, object]) -> str:
    """The log and the error of a failed nbgrader API call as one text, its start and end kept
    (nbgrader's warnings come first, its exception last; the middle of a long log is dropped)."""
    text = "\n".join(str(result.get(key) or "") for key in ("log", "error"))
    return text if len(text) <= 2 * _KEEP else text[:_KEEP] + "\n...\n" + text[-_KEEP:]


def explain(error: str) -> str:
    """A failed grading in words a TA can act on: what was wrong with the notebook, and what to do.

    nbgrader names the cause in the warnings it logs before its final "see the above traceback";
    those are read first, then the exception itself (see :func:`last_exception`).
    """
    lines = _lines(error)
    causes: list[str] = []
    for pattern, words in (*_EXPLAINED, _LAST_RESORT):
        if causes and pattern == _LAST_RESORT[0]:
            break
        for line in lines:
            found = re.search(pattern, line)
            if found and words.format(*found.groups()) not in causes:
                causes.append(words.format(*found.groups()))
    if causes:
        return "; ".join(causes[:3]) + ". " + _FIX
    return last_exception(error)


def last_exception(error: str) -> str:
    """The last line of nbgrader's output that names an exception or an error it logged (a traceback's
    own exception, never a routine warning logged before it, nor nbgrader's "see the log" lines)."""
    lines = _lines(error)
    specific = [ln for ln in lines if not any(g in ln for g in _GENERIC)
                and (re.match(r"^[A-Za-z_.]*(Error|Exception)\b", ln) or re.match(r"^\[(ERROR|CRITICAL)\]", ln))]
    return (specific or lines or ["no details"])[-1][:300]


def cause(result: Mapping[str, object]) -> str:
    """Why a failed nbgrader API call (a release, feedback) failed: the exception it logged."""
    return last_exception(failure_text(result))


def _lines(text: str) -> list[str]:
    return [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
