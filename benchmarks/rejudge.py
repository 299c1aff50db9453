"""`course rejudge` on many submissions: judging stored values again, no kernel.

    python benchmarks/rejudge.py                  # 500 synthetic submissions of the toy assignment
    python benchmarks/rejudge.py --submissions 2000

Builds a throw-away course with the toy assignment (tests/fixtures/toy) released into its
gradebook, 500 graded submissions with status records holding their published values (half of
them a little off, 1e-9 relative), and reference values whose first test is too strict to
accept them (rtol 1e-12). The test is then "fixed" (rtol 1e-5) and the seconds of one
`rejudge` are printed: every submission judged, about half of the scores changed in the
gradebook, their records and autograded notebooks written, late penalties set again. The
process's CPU seconds are printed beside them: on a shared machine they show the work itself.
Target: at most 10 s for 500. A script that prints figures, not a timed test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LABELS = {"test_square": ["square of a negative number should be positive",
                          "square of a negative fraction should be positive"],
          "test_mean_square": ["mean_square must average the squares (negative numbers too)"]}
VALUES = {"test_square": [4.0, 2.25], "test_mean_square": [1.5625]}


def payloads(gid: str, off: float, rtol: float) -> list[dict]:
    from course_utils import checks

    return [{"label": label, "value": checks.encode(value * (1 + off)), "rtol": rtol, "atol": 0.0}
            for label, value in zip(LABELS[gid], VALUES[gid])]


def build(root: Path, n: int) -> list[str]:
    """The course: toy released, ``n`` graded submissions with records, a strict reference."""
    import nbformat
    from nbgrader.api import Gradebook

    from course_tools import cli
    from course_tools.grading import reference, status
    from course_tools.layout import Course

    shutil.copytree(REPO / "tests" / "fixtures" / "toy", root, dirs_exist_ok=True)
    shutil.copy(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    os.environ["COURSE_ROOT"] = str(root)
    assert cli.main(["release", "toy", "--no-reference"]) == 0
    course = Course.current()
    students = [f"s{i:04d}" for i in range(n)]
    solution = nbformat.read(course.source_notebook("toy"), as_version=4)
    with Gradebook(course.gradebook_url()) as gb:
        for i, student in enumerate(students):
            gb.add_student(student)
            sub = gb.add_submission("toy", student)
            for g in sub.notebooks[0].grades:
                g.auto_score = 0.0 if (g.name == "test_square" and i % 2) else (g.max_score or 0.0)
            folder = course.autograded(student, "toy")
            folder.mkdir(parents=True)
            nbformat.write(solution, folder / "toy.ipynb")
            status.write(course, "toy", student, {
                "student": student, "status": "graded", "reason": "", "digest": "",
                "scores": {"test_square": [0.0 if i % 2 else 2.0, 2.0], "test_mean_square": [2.0, 2.0]},
                "report": {"judged": {"test_square": not i % 2, "test_mean_square": True}},
                "published": {gid: payloads(gid, 1e-9 if i % 2 else 0.0, 1e-5) for gid in LABELS}})
        gb.db.commit()
    strict = {"cells": {gid: payloads(gid, 0.0, 1e-12 if gid == "test_square" else 1e-5) for gid in LABELS},
              "errors": {}}
    course.reference_file("toy").write_text(json.dumps({"digest": reference.digest(course, "toy"),
                                                        "notebooks": {"toy": strict}}))
    return students


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--submissions", type=int, default=500)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from course_tools.config import quiet_library_warnings
    from course_tools.grading import reference
    from course_tools.grading.rejudge import rejudge
    from course_tools.layout import Course

    quiet_library_warnings()
    root = Path(tempfile.mkdtemp(prefix="bench-rejudge-"))
    try:
        started = time.perf_counter()
        build(root, args.submissions)
        setup = time.perf_counter() - started
        course = Course.current()
        fixed = {"cells": {gid: payloads(gid, 0.0, 1e-5) for gid in LABELS}, "errors": {}}
        course.reference_file("toy").write_text(json.dumps({"digest": reference.digest(course, "toy"),
                                                            "notebooks": {"toy": fixed}}))
        started, cpu_started = time.perf_counter(), time.process_time()
        report = rejudge(course, "toy")
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        load = os.getloadavg()[0]
        print(f"rejudge: {report.judged} submissions in {seconds:.2f} s, {cpu:.2f} s of CPU in this process "
              f"(it starts no other; {len(report.changed)} scores changed, "
              f"{len(report.rerun)} to run again); target <= 10 s for 500; set-up {setup:.0f} s; "
              f"load average {load:.1f} on {os.cpu_count()} cores")
        assert len(report.changed) == args.submissions // 2 and not report.rerun
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
