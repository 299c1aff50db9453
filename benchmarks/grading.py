"""Autograding throughput: `course autograde` on 1 and 2 workers against plain nbgrader.

    python benchmarks/grading.py                       # vae, 16 submissions (about 9 minutes)
    python benchmarks/grading.py --assignment toy --submissions 12 --course tests/fixtures/toy

Every submission is the assignment's solution, so each grading does the full
work (all cells run, all tests pass). Prints submissions graded per minute
with 1 and 2 workers, the speed-up, the overhead per submission of the
sandbox, crash handling and judging outside the kernel against stock
``nbgrader autograde`` (one after another, as nbgrader does; reference values
and the gradebook entry made beforehand, as ``course release`` does), and the projected wall
time of 7,000 notebooks on a 32-worker cluster. A script that prints
figures, not a timed test: the machine's load is printed beside them.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def cpu_seconds() -> float:
    """CPU time of this process and every process it has started and waited for (kernels, workers):
    what a grading costs, whatever else the machine is doing."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def plain_nbgrader(assignment: str, students: list[str]) -> float:
    """Seconds per submission of stock nbgrader autograde (its own Execute, no sandbox, no judging),
    one after another (its only mode)."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.converters import Autograde
    from nbgrader.coursedir import CourseDirectory

    from course_tools.config import load_config

    config = load_config()
    config.Autograde.autograde_preprocessors = Autograde.class_traits()["autograde_preprocessors"].default()
    api = NbGraderAPI(CourseDirectory(config=config), config=config)
    start = time.monotonic()
    for student in students:
        assert api.autograde(assignment, student, force=True, create=True)["success"]
    return (time.monotonic() - start) / len(students)


def prepare(assignment: str) -> None:
    """What `course release` does once per assignment before any grading: the gradebook entry
    each task carries and the solution's reference values (kept between runs)."""
    from course_tools.grading import reference
    from course_tools.grading.coordinator import make_kit
    from course_tools.grading.job import Settings
    from course_tools.layout import Course

    course = Course.current()
    reference.ensure(course, make_kit(course, assignment), Settings())


def ours(assignment: str, workers: int) -> tuple[float, int]:
    """(wall seconds, submissions graded) of `course autograde` with ``workers`` local workers."""
    from course_tools.grading.coordinator import autograde

    summary = autograde(assignment, workers=workers, force=True, progress=False)
    return summary.seconds, summary.graded + summary.flagged


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assignment", default="vae")
    parser.add_argument("--course", type=Path, default=REPO, help="course folder holding notebooks/<assignment>")
    parser.add_argument("--submissions", type=int, default=16, help="a short batch understates two workers: the second one's start-up weighs more")
    args = parser.parse_args()
    os.environ.setdefault("COURSE_DATA", str(REPO / "data"))
    from course_tools.config import quiet_library_warnings

    quiet_library_warnings()
    from course_tools.layout import Course
    from course_tools.scratch import solution_course

    root = solution_course(args.assignment, args.submissions, source=Course(args.course.resolve()))
    os.environ["COURSE_ROOT"] = str(root)
    students = sorted(p.name for p in (root / "submitted").iterdir())
    try:
        print(f"{args.assignment}: {len(students)} submissions (the solution), FAST mode, "
              f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
        cpu = cpu_seconds()
        plain = plain_nbgrader(args.assignment, students)
        cpu, plain_cpu = cpu_seconds(), (cpu_seconds() - cpu) / len(students)
        print(f"  plain nbgrader autograde, one after another: {plain:6.1f} s per submission "
              f"({60 / plain:5.1f} per minute; {plain_cpu:.1f} CPU-s each)", flush=True)
        prepare(args.assignment)
        rate = {}
        for workers in (1, 2):
            cpu = cpu_seconds()
            seconds, graded = ours(args.assignment, workers)
            rate[workers] = graded / seconds * 60
            print(f"  course autograde, {workers} worker{'s' if workers > 1 else ' '}:           "
                  f"{seconds / graded:6.1f} s per submission ({rate[workers]:5.1f} per minute, "
                  f"{graded}/{len(students)} graded; {(cpu_seconds() - cpu) / graded:.1f} CPU-s each; "
                  f"load {os.getloadavg()[0]:.1f})", flush=True)
        per_sub_one = 60 / rate[1]
        speedup = rate[2] / rate[1]
        print(f"  speed-up 2 workers / 1 worker:  {speedup:.2f}x (2 cores)")
        print(f"  overhead per submission against plain nbgrader (sandbox, crash handling, judging, "
              f"worker start-up): {per_sub_one - plain:+.1f} s")
        efficiency = speedup / 2
        hours = 7000 * per_sub_one / (32 * efficiency) / 3600
        print(f"  projected: 7,000 notebooks on 32 workers (one core each, the 2-worker efficiency "
              f"{efficiency:.0%}): {hours:.2f} h  (plain nbgrader, one after another: {7000 * plain / 3600:.1f} h)")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
