"""Judging test cells outside the kernel.

A test cell's points never come from what a student's kernel says about
itself. Instead:

1. The kernel runs the notebook with every hidden test removed (what the
   student saw), so no hidden test exists where student code could read it
   while the student's own cells run.
2. Then each test cell runs again, whole, in the same kernel, but in its
   *student version* (:func:`course_tools.testcells.student_version`): the lines between
   ``### BEGIN REFERENCE`` and ``### END REFERENCE`` are gone and every
   expectation's target is ``None``, so no expected value is ever computed
   there. Each ``checks.expect`` publishes the value it observed as plain
   data; nothing else of this run is kept.
3. The grader compares those values (:func:`judge`), in its own process,
   with what the same expectations published when the solution ran in a
   clean kernel (the *reference*), where the targets were computed and
   checked. Messages come from the reference run too.

A kernel that lies can only replace values it reports, which earns nothing
unless the values are right.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

from course_utils import checks
from course_utils.checks import Published

# The message an expectation publishes is defined beside its encoder, in course_utils.checks
# (the kernel side); these are the names the grader reads it by.
MAX_PAYLOAD = checks.MAX_PUBLISHED  # characters of one published value (its JSON, arrays in base64)
MAX_LABEL = checks.MAX_LABEL  # characters of a message kept; a longer one is cut (it can match no real test)
parse_payload = checks.read_published  # a kernel's text -> Published, or None for anything malformed or too large


# ---------------------------------------------------------------- judging


@dataclass
class Verdict:
    passed: bool
    message: str = ""  # from the reference run: what a student may see
    reached: bool = True  # False: the test stopped before this expectation published anything


def judge(reference: list[Published], student: list[Published]) -> Verdict:
    """Does every expectation of the reference run find a matching value in the student's run?

    Expectations are matched by message and occurrence (the third
    ``expect(..., "shape")`` of the reference against the student's third),
    compared with the reference's tolerances. The first that fails, or is
    missing because the test stopped early, gives the verdict its message.
    """
    if not reference:
        return Verdict(False, "this test has no reference values (the grader cannot judge it)")
    published: dict[str, list[Published]] = defaultdict(list)
    for payload in student:
        published[payload["label"]].append(payload)
    seen: Counter[str] = Counter()
    for expected in reference:
        label = expected["label"]
        k = seen[label]
        seen[label] += 1
        if k >= len(published[label]):
            return Verdict(False, label, reached=False)
        if not _matches(published[label][k], expected):
            return Verdict(False, label)
    return Verdict(True)


def _matches(published: Published, expected: Published) -> bool:
    """Does a published value match the reference's? A value that cannot be decoded or compared
    (of any shape, size or nesting a kernel could send) is a failed expectation, never an error."""
    try:
        problem = checks.compare(checks.decode(published["value"]), checks.decode(expected["value"]),
                                 rtol=expected["rtol"], atol=expected["atol"])
    except (ArithmeticError, ValueError, TypeError, RecursionError, MemoryError):
        return False
    return problem is None


def surplus(reference: list[Published], student: list[Published]) -> list[str]:
    """Messages the student's run published more often than the reference did: the
    test cannot have produced them, so something in the submission did."""
    wanted = Counter(p["label"] for p in reference)
    got = Counter(p["label"] for p in student)
    return sorted(label for label in got if got[label] > wanted.get(label, 0))
