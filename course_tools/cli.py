"""The ``course`` command: the instructor's and TA's front end over nbgrader.

    course list                      assignments, graded cells and points
    course release [A ...] [--due DATE]
                                     student versions into release/ (and the assignment's due date)
    course workspace                 copy releases into assignments/ for a student (never overwrites)
    course publish DIR [A ...] [--zip FILE] [--url URL]
                                     the student kit: released notebooks, course_utils, set-up, README
    course run A [--fast] [--results FILE] [--output NB]
                                     execute the source notebook headless
    course selfcheck [A ...] [--fast] [--sample K] [--device cuda]
                                     prove assignments sound (see course_tools.authoring.selfcheck)
    course strip [NB ...]            clear outputs of source notebooks before a commit
    course convert A|NB [--write]    plain nbgrader asserts in test cells rewritten as checks.expect
    course validate NOTEBOOK         run a notebook's visible tests; exit 0 only if all pass
    course autograde A [--students S ...] [--workers N | --scheduler ADDRESS] [--force]
                                     grade collected submissions in parallel, sandboxed, resumable
    course export [A ...] [-o FILE]  grades as CSV with a status column (never a zero for "not graded")
    course export A --format canvas|moodle [--column NAME] [-o FILE]
                                     the grade file an LMS imports (not-graded rows left empty and listed)
    course collect-zip A FILE.zip [--update]
                                     an LMS's bulk download of submissions into submitted/<student>/A/
    course rejudge A                 judge stored values again against the current reference (no code run)
    course term [--format csv|canvas|moodle] [-o FILE]
                                     the whole term: final scores, late days, weighted total
    course similarity A [--threshold X] [--top N]
                                     pairs of submissions whose answers are alike, ranked for a person to read
    course report A|--term [--mutant-candidates]
                                     what students fail: pass rates, failure messages, shared wrong values
    course feedback A [--provisional]
                                     feedback for graded submissions; notes for the rest; none (or marked
                                     provisional) while answers wait for a person
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from course_tools import assignments
from course_tools.layout import Course


def _names(given: list[str]) -> list[str]:
    names = given or assignments.available()
    if not names:
        raise assignments.UnknownAssignment("No assignments found under notebooks/.")
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

    from course_tools.config import load_config
    from course_tools.grading.nbgrader_errors import cause

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
            print(f"{name}: generate_assignment failed: {cause(result)}")
            failed += 1
            continue
        a = assignments.load(name)
        print(f"released {name:<16} -> release/{name}/  {len(a.tests)} test cells ({a.auto_points:g} pts autograded), "
              f"{len(a.manual)} written ({a.manual_points:g} pts manual)", flush=True)
        if args.reference:
            failed += not _make_reference(name)
    return (1 if failed else 0) or _release_dates(args)


def _release_dates(args: argparse.Namespace) -> int:
    """``--due`` and ``course.toml``'s dates into the gradebook, where nbgrader's late policy reads them."""
    from course_tools.grading import deadlines

    course = Course.current()
    try:
        for name in args.assignments if args.due else []:
            print(f"{name}: due {deadlines.set_due(course, name, args.due):%Y-%m-%d %H:%M} UTC")
        deadlines.sync_gradebook(course, deadlines.load(course))
    except deadlines.CalendarError as exc:
        print(f"course release: {exc}", file=sys.stderr)
        return 2
    return 0


def _make_reference(name: str) -> bool:
    """Run the solution once, sandboxed, for the values submissions are judged against."""
    from course_tools.grading import reference
    from course_tools.grading.coordinator import make_kit
    from course_tools.grading.job import Settings

    course = Course.current()
    try:
        reference.make(course, make_kit(course, name), Settings())
    except reference.GradingSetupError as exc:
        print(f"{name}: no reference values: {exc}")
        return False
    print(f"          {'':<16} -> {course.reference_file(name).relative_to(course.root)}  (the values submissions "
          "are judged against)")
    return True


def cmd_workspace(args: argparse.Namespace) -> int:
    from course_tools.workspace import NothingReleased, fill

    course = Course.current()
    try:
        done = fill(course)
    except NothingReleased as exc:
        print(exc, file=sys.stderr)
        return 2
    for name, how in done:
        print(f"{how:<9} {course.workspace().name}/{name}/" + (" (your work is never overwritten)" if how == "kept" else ""))
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    """Build the student kit (see course_tools.authoring.publish); nothing changes if it fails."""
    from course_tools.authoring.publish import PublishError, publish

    try:
        kit = publish(args.dir, args.assignments or None, zip_to=args.zip, url=args.url)
    except PublishError as exc:
        print(f"course publish: {exc}", file=sys.stderr)
        return 2
    print(f"published {len(kit.assignments)} assignments ({', '.join(kit.assignments)}) for course {kit.course_id} "
          f"-> {kit.root}\nno solution, hidden test or mark scheme line in any file of it; students run `python kit.py lab` there")
    if args.url:
        print(f"its notebooks install {kit.wheel.name} from {args.url} where course_utils is missing: "
              "put the wheel there")
    if kit.archive:
        print(f"zip archive for an LMS: {kit.archive}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from course_tools.authoring.runner import CellExecutionError, run

    try:
        results = run(args.assignment, fast=args.fast, results=args.results, output=args.output)
    except CellExecutionError as exc:
        print(f"course run {args.assignment}: a cell failed\n{exc}", file=sys.stderr)
        return 1
    print(json.dumps(results, indent=2, sort_keys=True))
    return 0


def cmd_selfcheck(args: argparse.Namespace) -> int:
    from course_tools.scratch import GradingFailed
    from course_tools.authoring.selfcheck import selfcheck

    if args.device and args.device != "cpu":
        return _device_unavailable(args.device)
    failed = 0
    for name in _names(args.assignments):
        try:
            report = selfcheck(name, fast=args.fast, keep=args.keep, only_mutants=args.mutant, sample=args.sample)
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


def _device_unavailable(device: str) -> int:
    """``--device``: the solution on a GPU against its CPU reference needs a GPU here; says what is missing (exit 2)."""
    import torch

    kind = device.split(":")[0]
    present = torch.cuda.is_available() if kind == "cuda" else kind == "mps" and torch.backends.mps.is_available()
    if not present:
        print(f"course selfcheck --device {device}: no {kind.upper()} device on this machine "
              "(torch sees none); nothing was compared", file=sys.stderr)
        return 2
    print(f"course selfcheck --device {device}: the notebooks place no work on course.device yet and the grading "
          "sandbox passes no COURSE_DEVICE, so the solution would run on the CPU twice; nothing was compared",
          file=sys.stderr)
    return 2


def cmd_strip(args: argparse.Namespace) -> int:
    paths = [Path(p) for p in args.notebooks] or [assignments.load(n).path for n in assignments.available()]
    for path in assignments.strip_outputs(paths):
        print(f"stripped {path}")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from course_tools.authoring.convert import main as convert

    return convert(args.target, write=args.write)


def cmd_validate(args: argparse.Namespace) -> int:
    from course_tools.validation import validate

    return validate(Path(args.notebook))


def cmd_autograde(args: argparse.Namespace) -> int:
    from course_tools.grading.coordinator import GradingSetupError, autograde
    from course_tools.grading.job import Settings
    from course_tools.grading.sandbox import SandboxUnavailable

    settings = Settings(fast=not args.full, sandbox=not args.no_sandbox, cell_timeout=args.cell_timeout,
                        run_timeout=args.run_timeout, memory_mib=args.memory_mib)
    if args.no_sandbox:
        print("WARNING: --no-sandbox: student code runs as you, with your files and network.", file=sys.stderr)
    try:
        summary = autograde(args.assignment, students=args.students, workers=args.workers,
                            scheduler=args.scheduler, force=args.force, settings=settings)
    except (GradingSetupError, SandboxUnavailable) as exc:
        print(f"course autograde: nothing graded: {exc}", file=sys.stderr)
        return 2
    print(summary.line())
    print(f"`course export {args.assignment}` lists every status and reason.")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    if args.format != "csv":
        return _export_lms(args)
    from course_tools.grading.export import rows, write_csv

    table = rows(Course.current(), args.assignments or None)
    if args.output:
        with open(args.output, "w", newline="") as out:
            write_csv(table, out)
        counts: dict[str, int] = {}
        for row in table:
            counts[row["status"]] = counts.get(row["status"], 0) + 1
        print(f"wrote {args.output}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    else:
        write_csv(table)
    return 0


def _export_lms(args: argparse.Namespace) -> int:
    """The grade file Canvas or Moodle imports; rows without a final grade are left empty and listed."""
    from course_tools.grading.export import rows
    from course_tools.grading.lms import ArchiveError, export_lms, print_export_summary

    if len(args.assignments) != 1:
        print(f"course export --format {args.format}: name one assignment (an LMS file holds one)", file=sys.stderr)
        return 2
    course, assignment = Course.current(), args.assignments[0]
    try:
        result = export_lms(course, assignment, args.format, rows(course, [assignment]), args.column)
    except ArchiveError as exc:
        print(f"course export: {exc}", file=sys.stderr)
        return 2
    if args.output:
        Path(args.output).write_text(result.text, encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(result.text)
    print_export_summary(result, args.format)
    return 0


def cmd_rejudge(args: argparse.Namespace) -> int:
    """Judge every graded submission again from its stored values; list changed scores and needed re-runs."""
    from course_tools.grading.rejudge import RejudgeError, rejudge

    try:
        report = rejudge(Course.current(), args.assignment)
    except RejudgeError as exc:
        print(f"course rejudge: nothing changed: {exc}", file=sys.stderr)
        return 2
    print("\n".join(report.lines()))
    return 0


def cmd_term(args: argparse.Namespace) -> int:
    from course_tools.grading.term_export import main as term

    return term(Course.current(), args.format, Path(args.output) if args.output else None)


def cmd_collect_zip(args: argparse.Namespace) -> int:
    """An LMS's archive of submissions into submitted/; exit 1 when some file matched no student."""
    from course_tools.grading.lms import ArchiveError, collect_zip

    try:
        report = collect_zip(Course.current(), args.assignment, Path(args.archive), update=args.update)
    except ArchiveError as exc:
        print(f"course collect-zip: nothing placed: {exc}", file=sys.stderr)
        return 2
    print("\n".join(report.lines()))
    return 1 if report.unmatched else 0


def cmd_similarity(args: argparse.Namespace) -> int:
    from course_tools.grading.similarity import main as similarity

    return similarity(Course.current(), args.assignment, threshold=args.threshold, top=args.top)


def cmd_report(args: argparse.Namespace) -> int:
    from course_tools.authoring.mutant_candidates import announce
    from course_tools.grading.report_page import main as report

    return report(Course.current(), args.assignment, term=args.term, then=announce if args.mutant_candidates else None)


def cmd_feedback(args: argparse.Namespace) -> int:
    from course_tools.grading.feedback import main as feedback

    return feedback(Course.current(), args.assignment, provisional=args.provisional)


def _authoring_commands(sub: argparse._SubParsersAction) -> None:
    """Before a release: listing, releasing, a student's workspace, the student kit."""
    p = sub.add_parser("list", help="assignments, graded cells and points")
    p.add_argument("assignments", nargs="*")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("release", help="generate student versions into release/")
    p.add_argument("assignments", nargs="*")
    p.add_argument("--no-reference", dest="reference", action="store_false",
                   help="skip running the solution for the values submissions are judged against")
    p.add_argument("--due", help="the due date, e.g. '2026-10-09 23:59' (course.toml's time zone; it wins if it "
                   "names another)")
    p.set_defaults(func=cmd_release)
    p = sub.add_parser("workspace", help="copy releases into assignments/ without overwriting")
    p.set_defaults(func=cmd_workspace)
    p = sub.add_parser("publish", help="the student kit: released notebooks, course_utils, set-up, README")
    p.add_argument("dir", type=Path, help="the kit's folder: new, empty, or holding an earlier kit")
    p.add_argument("assignments", nargs="*", help="the assignments in it (default: all)")
    p.add_argument("--zip", type=Path, help="also write the kit as this zip archive (for an LMS)")
    p.add_argument("--url", help="where the kit's wheel (dist/*.whl) will be downloadable (a GitHub release or "
                   "repository, a web folder): its notebooks then set themselves up on Colab, Kaggle, any JupyterHub")
    p.set_defaults(func=cmd_publish)


def _checking_commands(sub: argparse._SubParsersAction) -> None:
    """Before a release: running notebooks, proving them sound, stripping outputs, converting asserts."""
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
    p.add_argument("--sample", type=int, metavar="K",
                   help="grade only the first K mutants of each test cell and every shortcut (quick runs)")
    p.add_argument("--device", help="cuda: the solution on this machine's GPU against its CPU reference "
                   "(exit 2 where there is none)")
    p.set_defaults(func=cmd_selfcheck)
    p = sub.add_parser("strip", help="clear outputs of source notebooks")
    p.add_argument("notebooks", nargs="*")
    p.set_defaults(func=cmd_strip)
    p = sub.add_parser("convert", help="rewrite a plain nbgrader notebook's assert tests as checks.expect")
    p.add_argument("target", help="an assignment's name or a notebook's path")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="rewrite the notebook (the original kept as .orig)")
    mode.add_argument("--dry-run", action="store_true", help="only print what would change (the default)")
    p.set_defaults(func=cmd_convert)


def _grading_commands(sub: argparse._SubParsersAction) -> None:
    """After hand-in: validating, grading, exporting, collecting an LMS's archive."""
    p = sub.add_parser("validate", help="run a notebook's visible tests; exit 0 only if all pass")
    p.add_argument("notebook")
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("autograde", help="grade collected submissions in parallel, sandboxed")
    p.add_argument("assignment")
    p.add_argument("--students", nargs="+", help="only these students (default: every submission)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                       help="local dask workers, one submission each (default: one per core)")
    where.add_argument("--scheduler", help="address of a running dask scheduler, e.g. tcp://10.0.0.5:8786")
    p.add_argument("--force", action="store_true", help="grade again what is already graded")
    p.add_argument("--cell-timeout", type=int, default=300, help="seconds one cell may run")
    p.add_argument("--run-timeout", type=int, default=1800, help="seconds the grading of one submission may take")
    p.add_argument("--memory-mib", type=int, default=8192, help="address-space limit of a kernel")
    p.add_argument("--full", action="store_true", help="run notebooks at full size, not in FAST mode")
    p.add_argument("--no-sandbox", action="store_true", help="no isolation: only for code you trust")
    p.set_defaults(func=cmd_autograde)
    p = sub.add_parser("export", help="grades as CSV with a status column")
    p.add_argument("assignments", nargs="*")
    p.add_argument("-o", "--output", help="CSV file (default: standard output)")
    p.add_argument("--format", choices=["csv", "canvas", "moodle"], default="csv",
                   help="csv: every status and reason; canvas, moodle: the grade file that LMS imports")
    p.add_argument("--column", help="canvas: the gradebook column, e.g. 'Homework 3 (123456)' (default: the name)")
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("collect-zip", help="submissions from an LMS's bulk download (Canvas, Moodle)")
    p.add_argument("assignment")
    p.add_argument("archive", help="the zip the LMS's 'download all submissions' gives")
    p.add_argument("--update", action="store_true", help="replace a collected submission by a newer one "
                   "(the old one is kept under lms/replaced/)")
    p.set_defaults(func=cmd_collect_zip)


def _term_commands(sub: argparse._SubParsersAction) -> None:
    """Across a term and a class: regrades, the term's file, copied work, what to reteach, feedback."""
    p = sub.add_parser("rejudge", help="judge stored values again against the current reference (no code run)")
    p.add_argument("assignment")
    p.set_defaults(func=cmd_rejudge)
    p = sub.add_parser("term", help="the whole term in one file: final scores, late days, weighted total")
    p.add_argument("-o", "--output", help="file to write (default: standard output)")
    p.add_argument("--format", choices=["csv", "canvas", "moodle"], default="csv",
                   help="csv: every status; canvas, moodle: the grade import of that LMS, a column per assignment")
    p.set_defaults(func=cmd_term)
    p = sub.add_parser("similarity", help="pairs of submissions whose answers are alike: similarity/A.html, .csv")
    p.add_argument("assignment")
    p.add_argument("--threshold", type=float, default=0.4, help="lowest rank score listed (default 0.4)")
    p.add_argument("--top", type=int, default=100, help="pairs shown in full on the page (default 100)")
    p.set_defaults(func=cmd_similarity)
    p = sub.add_parser("report", help="what to reteach: report/A.html and .csv (report/term.* with --term)")
    p.add_argument("assignment", nargs="?")
    p.add_argument("--term", action="store_true", help="every assignment of the term on one page")
    p.add_argument("--mutant-candidates", action="store_true",
                   help="also report/A.mutant-candidates.toml: the commonest wrong answers as mutants to review")
    p.set_defaults(func=cmd_report)
    p = sub.add_parser("feedback", help="feedback files, and notes for submissions that were not graded")
    p.add_argument("assignment")
    p.add_argument("--provisional", action="store_true", help="also for submissions whose grading is unfinished, "
                   "marked provisional at the top of the page")
    p.set_defaults(func=cmd_feedback)


def parser() -> argparse.ArgumentParser:
    """The ``course`` command's arguments: one sub-command per verb, each calling one ``cmd_*``."""
    top = argparse.ArgumentParser(prog="course", description=__doc__.split("\n\n")[0])
    sub = top.add_subparsers(dest="command", required=True)
    for add in (_authoring_commands, _checking_commands, _grading_commands, _term_commands):
        add(sub)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from course_tools.config import quiet_library_warnings
    from course_tools.grading.deadlines import CalendarError

    quiet_library_warnings()
    try:
        return args.func(args)
    except assignments.UnknownAssignment as exc:
        print(f"course {args.command}: {exc}", file=sys.stderr)
        return 2
    except CalendarError as exc:  # course.toml or extensions.csv, read by every export
        print(f"course {args.command}: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `course list | head`: the reader has gone; stop quietly, as other tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
