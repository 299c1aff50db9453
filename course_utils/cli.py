"""The ``course`` command: the instructor's and TA's front end over nbgrader.

    course list                      assignments, graded cells and points
    course release [A ...]           student versions into release/
    course workspace                 copy releases into assignments/ for a student (never overwrites)
    course run A [--fast] [--results FILE] [--output NB]
                                     execute the source notebook headless
    course selfcheck [A ...] [--fast]
                                     prove assignments sound (see course_utils.selfcheck)
    course strip [NB ...]            clear outputs of source notebooks before a commit
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from course_utils import assignments
from course_utils.paths import repo_root


def _names(given: list[str]) -> list[str]:
    names = given or assignments.available()
    if not names:
        raise SystemExit("No assignments found under notebooks/.")
    return names


def cmd_list(args: argparse.Namespace) -> int:
    print(f"{'assignment':<18}{'tests':>6}{'auto pts':>10}{'written':>9}{'manual pts':>12}")
    for name in _names(args.assignments):
        a = assignments.load(name)
        print(f"{name:<18}{len(a.tests):>6}{a.auto_points:>10g}{len(a.manual):>9}{a.manual_points:>12g}")
    return 0


def cmd_release(args: argparse.Namespace) -> int:
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    from course_utils.nbgrader_ext import load_config

    config = load_config()
    api = NbGraderAPI(CourseDirectory(config=config), config=config)
    failed = 0
    for name in _names(args.assignments):
        problems = assignments.metadata_problems(assignments.load(name))
        if problems:
            print(f"{name}: not released:\n  " + "\n  ".join(problems))
            failed += 1
            continue
        result = api.generate_assignment(name, force=True, create=True)
        if not result["success"]:
            print(f"{name}: generate_assignment failed:\n{result.get('error') or result.get('log')}")
            failed += 1
            continue
        a = assignments.load(name)
        print(f"released {name:<16} -> release/{name}/  {len(a.tests)} test cells ({a.auto_points:g} pts autograded), "
              f"{len(a.manual)} written ({a.manual_points:g} pts manual)")
    return 1 if failed else 0


def cmd_workspace(args: argparse.Namespace) -> int:
    """Copy each released assignment into assignments/, keeping anything already there."""
    release, work = repo_root() / "release", repo_root() / "assignments"
    if not release.is_dir():
        raise SystemExit("Nothing released yet: run `make release` (or `course release`) first.")
    for folder in sorted(p for p in release.iterdir() if p.is_dir()):
        target = work / folder.name
        if target.exists():
            print(f"kept      assignments/{folder.name}/ (your work is never overwritten)")
            continue
        shutil.copytree(folder, target)
        print(f"new       assignments/{folder.name}/")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from course_utils.runner import CellExecutionError, run

    try:
        results = run(args.assignment, fast=args.fast, results=args.results, output=args.output)
    except CellExecutionError as exc:
        print(f"course run {args.assignment}: a cell failed\n{exc}", file=sys.stderr)
        return 1
    print(json.dumps(results, indent=2, sort_keys=True))
    return 0


def cmd_selfcheck(args: argparse.Namespace) -> int:
    from course_utils.scratch import GradingFailed
    from course_utils.selfcheck import selfcheck

    failed = 0
    for name in _names(args.assignments):
        try:
            report = selfcheck(name, fast=args.fast, keep=args.keep, only_mutants=args.mutant)
        except GradingFailed as exc:
            print(f"selfcheck {name}: FAILED {exc}")
            failed += 1
            continue
        for line in report.lines:
            print(f"  {line}")
        for problem in report.problems:
            print(f"  PROBLEM: {problem}")
        print(report.summary, flush=True)
        failed += not report.ok
    return 1 if failed else 0


def cmd_strip(args: argparse.Namespace) -> int:
    import nbformat

    paths = [Path(p) for p in args.notebooks] or [assignments.load(n).path for n in assignments.available()]
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        changed = False
        for cell in nb.cells:
            if cell.cell_type == "code" and (cell.outputs or cell.execution_count):
                cell.outputs, cell.execution_count, changed = [], None, True
        if changed:
            nbformat.write(nb, path)
            print(f"stripped {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="course", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="assignments, graded cells and points")
    p.add_argument("assignments", nargs="*")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("release", help="generate student versions into release/")
    p.add_argument("assignments", nargs="*")
    p.set_defaults(func=cmd_release)
    p = sub.add_parser("workspace", help="copy releases into assignments/ without overwriting")
    p.set_defaults(func=cmd_workspace)
    p = sub.add_parser("run", help="execute a source notebook headless")
    p.add_argument("assignment")
    p.add_argument("--fast", action="store_true", help="COURSE_FAST=1: seconds instead of minutes")
    p.add_argument("--results", type=Path, help="JSON file for the notebook's recorded metrics")
    p.add_argument("--output", type=Path, help="write the executed notebook here")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("selfcheck", help="prove assignments sound before release")
    p.add_argument("assignments", nargs="*")
    p.add_argument("--fast", action="store_true", help="grade the solution in FAST mode too")
    p.add_argument("--keep", action="store_true", help="keep the scratch course folder for inspection")
    p.add_argument("--mutant", action="append", help="check only this mutant (repeatable)")
    p.set_defaults(func=cmd_selfcheck)
    p = sub.add_parser("strip", help="clear outputs of source notebooks")
    p.add_argument("notebooks", nargs="*")
    p.set_defaults(func=cmd_strip)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
