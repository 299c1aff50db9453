"""`course similarity` on a class: 500 synthetic submissions, the seconds it takes.

    python benchmarks/similarity.py                   # 500 submissions (target: 2 minutes on 2 cores)
    python benchmarks/similarity.py --submissions 100 --keep /tmp/sim-course

Each submission is built from the similarity fixture's answers (tests/fixtures/similarity):
for every answer cell one of the eight independent answers, its names renamed, comments and
blank lines added or dropped, and now and then a line of another student's answer spliced
in; every status record carries published values, a few of them shared wrong values.
Prints the wall and CPU seconds of the whole report (reading every notebook as the grader
reads it, fingerprinting, every pair compared, the page and CSV written). A script that
prints figures, not a timed test: the machine's load is printed beside them.
"""

from __future__ import annotations

import argparse
import builtins
import keyword
import os
import random
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from similarity_submissions import (ASSIGNMENT, CELLS, answers, make_course, submit, write_record,  # noqa: E402
                                    write_reference)

KEEP = set(keyword.kwlist) | set(dir(builtins)) | {"np", "math", "statistics", "collections"}
NAMES = ["val", "tmp", "arr", "res", "out", "acc", "vec", "mat", "buf", "cur", "nxt", "alpha", "beta", "acc2"]


def varied(code: str, rng: random.Random, donors: list[str]) -> str:
    """One student's version of ``code``: local names renamed, comments and blank lines moved, a line spliced in."""
    defined = set(re.findall(r"^\s*(\w+)\s*[-+*/]?=[^=]", code, flags=re.M))  # local names, not parameters
    defined |= set(re.findall(r"\bfor (\w+)", code))
    for name in sorted(defined - KEEP):
        if rng.random() < 0.6:
            code = re.sub(rf"\b{name}\b", f"{rng.choice(NAMES)}_{rng.randrange(100)}", code)
    lines = []
    for line in code.splitlines():
        if line.strip().startswith("#") and rng.random() < 0.5:
            continue
        lines.append(line)
        if line.strip() and rng.random() < 0.1:
            lines.append(" " * (len(line) - len(line.lstrip())) + f"# step {rng.randrange(1000)}")
        elif rng.random() < 0.05:
            lines.append("")
    if rng.random() < 0.3:
        donor = [d for d in rng.choice(donors).splitlines() if d.startswith("    ") and "return" not in d]
        if donor and len(lines) > 3:
            lines.insert(rng.randrange(2, len(lines)), rng.choice(donor))
    return "\n".join(lines) + "\n"


def build(root: Path, count: int, seed: int = 0) -> None:
    """``count`` submissions and their status records (with published values) in a fresh course at ``root``."""
    from course_utils import checks

    rng = random.Random(seed)
    bases = list(answers("independent").values())
    make_course(root)
    reference = {cell: [{"label": f"{cell} value", "value": checks.encode(np.arange(4.0)), "rtol": 1e-5, "atol": 1e-8}]
                 for cell in CELLS}
    write_reference(root, {f"test_{cell}": payloads for cell, payloads in reference.items()})
    wrong = [checks.encode(np.arange(4.0) + k) for k in range(1, 6)]  # five wrong values, some rarer than others
    for n in range(count):
        cells = {cell: varied(rng.choice(bases)[cell], rng, [b[cell] for b in bases]) for cell in CELLS}
        student = f"student{n:03d}"
        submit(root, student, cells)
        published = {}
        for cell in CELLS:
            value = rng.choice(wrong[: rng.randrange(1, 6)]) if rng.random() < 0.2 else reference[cell][0]["value"]
            published[f"test_{cell}"] = [{"label": f"{cell} value", "value": value}]
        write_record(root, student, published)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--submissions", type=int, default=500)
    parser.add_argument("--keep", type=Path, help="build the course here and keep it (default: a temporary folder)")
    args = parser.parse_args()
    from course_tools.grading import similarity
    from course_tools.layout import Course

    root = args.keep or Path(tempfile.mkdtemp(prefix="similarity-bench-")) / "course"
    if root.exists():
        shutil.rmtree(root)
    build(root, args.submissions)
    load = os.getloadavg()[0]
    wall, cpu = time.perf_counter(), time.process_time()
    ranking, flagged = similarity.report(Course(root), ASSIGNMENT)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"{len(ranking.answers)} submissions, {len(ranking.pairs)} pairs with anything in common, "
          f"{len(flagged)} listed: {wall:.1f} s wall, {cpu:.1f} s CPU (load average {load:.1f} on "
          f"{os.cpu_count()} cores; target 120 s)")
    print(f"page: {Course(root).similarity_page(ASSIGNMENT)}")
    if not args.keep:
        shutil.rmtree(root.parent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
