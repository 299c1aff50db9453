"""`course report` on a class: 500 synthetic submissions of the toy assignment, the seconds it takes.

    python benchmarks/report.py                      # 500 submissions (target: at most 30 s)
    python benchmarks/report.py --submissions 100 --keep /tmp/report-course

The class is built as tests/report_class.py builds the test's (no kernel): each student's answers
drawn from the roster's kinds of right and wrong answers, a submitted notebook, a status record
with the values the run published, a gradebook with test scores, written answers marked or
waiting and hand-in times, some late. Prints the wall and CPU seconds of the report (every record
read and judged again, the gradebook read through `course export`'s rows, the page with its plots
and the CSV written) and of the mutant candidates. A script that prints figures, not a timed test:
the machine's load is printed beside them.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import report_class  # noqa: E402
from report_class import MEAN_SQUARE, SQUARE, Student  # noqa: E402


def roster(n: int, seed: int = 0) -> list[Student]:
    """``n`` students: most right, the rest spread over the roster's wrong answers."""
    rng = random.Random(seed)
    squares = [k for k in SQUARE if k != "right"]
    means = [k for k in MEAN_SQUARE if k != "right"]
    out = []
    for i in range(n):
        square = "right" if rng.random() < 0.6 else rng.choice(squares)
        mean = "right" if rng.random() < 0.75 else rng.choice(means)
        written = rng.choice([None, 0.0, 0.5, 1.0, 1.0, 1.0])
        status = "flagged" if rng.random() < 0.01 else "graded"
        out.append(Student(f"student{i:04d}", square, mean, written, rng.random() < 0.1, status))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--submissions", type=int, default=500)
    parser.add_argument("--keep", type=Path, help="build the course here and keep it")
    args = parser.parse_args()
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"  # nbgrader runs alembic
    folder = args.keep or Path(tempfile.mkdtemp(prefix="report-bench-"))
    root = folder / "course"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(REPO / "tests" / "fixtures" / "toy", root)
    shutil.copy(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    os.environ["COURSE_ROOT"] = str(root)
    started = time.perf_counter()
    report_class.build(root, roster(args.submissions))
    print(f"built {args.submissions} submissions in {time.perf_counter() - started:.0f} s (not timed)")

    from course_tools.authoring import mutant_candidates as report_mutants
    from course_tools.grading import report_page
    from course_tools.layout import Course

    course = Course(root)
    wall, cpu = time.perf_counter(), time.process_time()
    reports = report_page.make(course, "toy")
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    r = reports[0]
    print(f"course report toy: {r.submissions} submissions, {len(r.failures)} failure messages, "
          f"{len(r.clusters)} shared wrong values: {wall:.1f} s wall, {cpu:.1f} s CPU (target: at most 30 s)")
    wall, cpu = time.perf_counter(), time.process_time()
    written, _ = report_mutants.write(course, r)
    print(f"--mutant-candidates: {written} candidates: {time.perf_counter() - wall:.1f} s wall, "
          f"{time.process_time() - cpu:.1f} s CPU")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
