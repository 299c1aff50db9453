"""Submissions in and grades out through a learning management system (Canvas, Moodle).

``course collect-zip A FILE.zip``: an LMS's "download all submissions" archive lands in
``submitted/<student>/A/`` as ``nbgrader collect`` would leave it (with ``timestamp.txt``),
and every file that could not be matched to a student is reported. Like nbgrader's
``zip_collect``, a file-name pattern per LMS finds the student in each archive entry:

- Canvas: ``<sortablename>[_LATE]_<user id>_<submission id>_<original name>``, e.g.
  ``doejane_LATE_12345_678901_vae-1.ipynb`` (Canvas adds ``-1`` to a resubmitted file);
- Moodle: ``<Full Name>_<participant id>_assignsubmission_file_<original name>``, or the
  same prefix as a folder (``Jane Doe_4242_assignsubmission_file_/vae.ipynb``) when
  submissions are downloaded in folders.

Who is who on the LMS (name, LMS id, late flag) is kept per assignment in
``lms/<assignment>.csv``: ``course export --format canvas|moodle`` writes the grade file
that LMS imports from it, with the LMS's documented columns. Only a final score is sent: a
submission that is not graded, or still waits for a person, is left empty and listed, never 0.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import sys
import unicodedata
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import TextIO

from course_tools.grading.status import GRADED, NO_SUBMISSION
from course_tools.layout import Course

IDENTITY_COLUMNS = ["student", "lms", "lms_id", "name", "submitted_at", "late", "files"]
MAX_UNPACKED_BYTES = 2 * 1024**3  # an archive that claims more than this unpacked is refused (zip bomb)
SCORE_IS_FINAL = (GRADED, NO_SUBMISSION)  # statuses whose score an LMS may receive

_CANVAS = re.compile(r"^(?P<name>[a-z0-9]+)(?P<late>_LATE)?_(?P<id>\d+)_(?P<submission>\d+)_(?P<file>.+)$")
_MOODLE = re.compile(r"^(?P<name>.+?)_(?P<id>\d+)_assignsubmission_(?P<plugin>[a-z]+)_(?P<file>.*)$")
_RESUBMITTED = re.compile(r"^(?P<stem>.+?)(?:-\d+| \(\d+\))$")  # vae-1.ipynb (Canvas), vae (1).ipynb (browsers)
_SKIPPED = ("__MACOSX/", ".DS_Store", "Thumbs.db")


class ArchiveError(RuntimeError):
    """The archive cannot be read safely; nothing was placed."""


@dataclass
class Submitter:
    """One student's entries in an archive."""

    lms: str
    lms_id: str
    name: str
    late: bool = False
    files: dict[str, zipfile.ZipInfo] = field(default_factory=dict)  # original file name -> archive entry

    @property
    def submitted_at(self) -> datetime:
        """The newest entry's time: the LMS stamps each file with its upload time."""
        return max(datetime(*info.date_time, tzinfo=timezone.utc) for info in self.files.values())


@dataclass
class CollectReport:
    placed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    renamed: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"placed    {p}" for p in self.placed] + [f"renamed   {r}" for r in self.renamed]
        out += [f"kept      {k}" for k in self.kept]
        out += [f"UNMATCHED {u}" for u in self.unmatched]
        summary = f"{len(self.placed)} submissions placed, {len(self.kept)} kept as they were, " \
                  f"{len(self.unmatched)} files not matched to a student"
        return [*out, summary]


# ------------------------------------------------------------------------------ reading an archive


def parse_entry(path: str) -> tuple[str, str, str, bool, str] | None:
    """(lms, lms id, name, late, original file name) of one archive entry, or None if no LMS named it."""
    parts = PurePosixPath(path).parts
    if len(parts) == 2 and (folder := _MOODLE.match(parts[0])) and folder["file"] == "":
        return "moodle", folder["id"], folder["name"], False, parts[1]
    if len(parts) != 1:
        return None
    if match := _CANVAS.match(parts[0]):
        return "canvas", match["id"], match["name"], bool(match["late"]), match["file"]
    if (match := _MOODLE.match(parts[0])) and match["file"]:
        return "moodle", match["id"], match["name"], False, match["file"]
    return None


def read_archive(archive: zipfile.ZipFile) -> tuple[dict[tuple[str, str], Submitter], list[str]]:
    """Group the archive's entries by student; return them and the names of entries no pattern matched."""
    total = sum(info.file_size for info in archive.infolist())
    if total > MAX_UNPACKED_BYTES:
        raise ArchiveError(f"the archive unpacks to {total / 1024**3:.1f} GiB (limit {MAX_UNPACKED_BYTES / 1024**3:.0f}"
                           " GiB): download the submissions in smaller batches")
    submitters: dict[tuple[str, str], Submitter] = {}
    unmatched = []
    for info in archive.infolist():
        if info.is_dir() or any(skip in info.filename for skip in _SKIPPED):
            continue
        parsed = parse_entry(info.filename)
        if parsed is None or "/" in parsed[4] or parsed[4] in ("", ".", ".."):
            unmatched.append(f"{info.filename}: not named the way Canvas or Moodle names submissions")
            continue
        lms, lms_id, name, late, original = parsed
        who = submitters.setdefault((lms, lms_id), Submitter(lms, lms_id, name))
        who.late = who.late or late
        who.files[original] = info
    return submitters, unmatched


def student_ids(submitters: list[Submitter]) -> dict[tuple[str, str], str]:
    """A readable, path-safe student id for each submitter: the name as a slug, with the LMS id added
    where two students would share one (ids stay the same across assignments of a class)."""
    slugs = {(s.lms, s.lms_id): _slug(s.name) or f"{s.lms}-{s.lms_id}" for s in submitters}
    counts: dict[str, int] = {}
    for slug in slugs.values():
        counts[slug] = counts.get(slug, 0) + 1
    return {key: slug if counts[slug] == 1 else f"{slug}-{key[1]}" for key, slug in slugs.items()}


def _slug(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")


def pick_notebook(assignment: str, files: dict[str, zipfile.ZipInfo]) -> tuple[str | None, str]:
    """Which file is the assignment's notebook, and a note when it was not named exactly ``<A>.ipynb``."""
    wanted = f"{assignment}.ipynb"
    if wanted in files:
        return wanted, ""
    notebooks = [name for name in files if name.endswith(".ipynb")]
    resubmitted = [n for n in notebooks if (m := _RESUBMITTED.match(n[:-6])) and m["stem"] == assignment]
    if len(resubmitted) == 1:
        return resubmitted[0], f"{resubmitted[0]} taken as {wanted} (the LMS renamed a resubmitted file)"
    if len(notebooks) == 1:
        return notebooks[0], f"{notebooks[0]} taken as {wanted} (the only notebook handed in)"
    return None, (f"no notebook named {wanted}" if not notebooks
                  else f"{len(notebooks)} notebooks and none named {wanted}: {', '.join(sorted(notebooks))}")


# ------------------------------------------------------------------------------ placing submissions


def collect_zip(course: Course, assignment: str, archive_path: Path, update: bool = False) -> CollectReport:
    """Place each student's files from an LMS archive in ``submitted/<student>/<assignment>/``.

    An existing submission is kept, unless ``update`` and the archive's is newer: then the old one is
    moved to ``lms/replaced/`` first. Nothing is ever deleted."""
    try:
        archive = zipfile.ZipFile(archive_path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise ArchiveError(f"{archive_path} is not a readable zip archive ({exc}): download it again from the LMS")
    report = CollectReport()
    with archive:
        submitters, report.unmatched = read_archive(archive)
        ids = student_ids(list(submitters.values()))
        identities = read_identities(course, assignment)
        for key, who in sorted(submitters.items(), key=lambda kv: ids[kv[0]]):
            student = ids[key]
            notebook, note = pick_notebook(assignment, who.files)
            if notebook is None:
                report.unmatched += [f"{who.files[n].filename}: {who.name} ({who.lms} {who.lms_id}): {note}"
                                     for n in sorted(who.files)] or [f"{who.name}: {note}"]
                continue
            if _place(course, assignment, student, who, notebook, archive, update, report):
                if note:
                    report.renamed.append(f"{student}: {note}")
                identities[student] = {"student": student, "lms": who.lms, "lms_id": who.lms_id, "name": who.name,
                                       "submitted_at": _stamp(who.submitted_at), "late": "yes" if who.late else "",
                                       "files": " ".join(sorted(who.files))}
        write_identities(course, assignment, identities)
    return report


def _place(course: Course, assignment: str, student: str, who: Submitter, notebook: str,  # noqa: PLR0913
           archive: zipfile.ZipFile, update: bool, report: CollectReport) -> bool:
    """Unpack one student's files; False when an existing submission is kept instead."""
    target = course.submitted(student, assignment)
    if target.exists():
        previous = _read_stamp(target / "timestamp.txt")
        if not update or (previous and previous >= who.submitted_at):
            why = "pass --update to replace it with a newer one" if not update else "the archive's is not newer"
            report.kept.append(f"{target.relative_to(course.root)} ({why})")
            return False
        when = _stamp(previous or datetime.now(timezone.utc)).replace(" ", "_")
        aside = course.lms_dir() / "replaced" / student / f"{assignment}-{when}"
        aside.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(target), aside)
    staging = target.with_name(f".{assignment}.collecting")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for original, info in who.files.items():
        name = f"{assignment}.ipynb" if original == notebook else original
        with archive.open(info) as src, open(staging / name, "wb") as dst:
            shutil.copyfileobj(src, dst)
    (staging / "timestamp.txt").write_text(_stamp(who.submitted_at))
    staging.rename(target)
    late = " (late)" if who.late else ""
    report.placed.append(f"{target.relative_to(course.root)}  <- {who.name} ({who.lms} {who.lms_id}){late}")
    return True


def _stamp(when: datetime) -> str:
    """nbgrader's timestamp format."""
    return when.strftime("%Y-%m-%d %H:%M:%S.%f %Z")


def _read_stamp(path: Path) -> datetime | None:
    from nbgrader.utils import parse_utc

    try:
        when = parse_utc(path.read_text().strip())  # naive, in UTC
    except (OSError, ValueError):
        return None
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when


# ------------------------------------------------------------------------------ identities


def identities_file(course: Course, assignment: str) -> Path:
    return course.lms_dir() / f"{assignment}.csv"


def read_identities(course: Course, assignment: str) -> dict[str, dict]:
    path = identities_file(course, assignment)
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as f:
        return {row["student"]: row for row in csv.DictReader(f)}


def write_identities(course: Course, assignment: str, identities: dict[str, dict]) -> None:
    path = identities_file(course, assignment)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=IDENTITY_COLUMNS)
        writer.writeheader()
        writer.writerows(identities[s] for s in sorted(identities))
    tmp.replace(path)


# ------------------------------------------------------------------------------ grades out


@dataclass
class LmsExport:
    text: str
    sent: int
    withheld: list[str]  # "student: status (reason)" of rows left empty
    unknown: list[str]  # graded students the LMS file cannot name (not collected from this LMS)


def export_lms(course: Course, assignment: str, lms: str, table: list[dict], column: str | None = None) -> LmsExport:
    """The grade file ``lms`` imports for ``assignment``, from ``course export``'s rows (``table``)."""
    identities = {s: row for s, row in read_identities(course, assignment).items() if row["lms"] == lms}
    if not identities:
        raise ArchiveError(f"no {lms} identities for {assignment} ({identities_file(course, assignment)}): "
                           f"collect the submissions with `course collect-zip {assignment} FILE.zip` first")
    by_student = {row["student"]: row for row in table if row["assignment"] == assignment}
    withheld, unknown, lines = [], [], []
    for student, row in sorted(by_student.items()):
        if student not in identities and row["status"] != NO_SUBMISSION:
            unknown.append(student)
    max_score = next(iter(by_student.values()))["max_score"] if by_student else ""
    for student, who in sorted(identities.items()):
        row = by_student.get(student)
        final = row is not None and row["status"] in SCORE_IS_FINAL and row["score"] != ""
        if not final:
            withheld.append(f"{student}: {row['status'] if row else 'not in the gradebook'}"
                            + (f" ({row['reason']})" if row and row["reason"] else ""))
        lines.append((who, _points(row["score"]) if final else ""))
    writer = _canvas if lms == "canvas" else _moodle
    return LmsExport(writer(assignment, lines, max_score, column), len(lines) - len(withheld), withheld, unknown)


def identities_for(course: Course, assignments: list[str], lms: str) -> dict[str, dict]:
    """Each student's identity on ``lms`` over several assignments (the latest assignment's wins)."""
    out: dict[str, dict] = {}
    for assignment in assignments:
        out.update({s: row for s, row in read_identities(course, assignment).items() if row["lms"] == lms})
    return out


def _points(score: object) -> str:
    return f"{float(score):g}"


def _canvas(assignment: str, lines: list[tuple[dict, str]], max_score: object, column: str | None) -> str:
    """Canvas's gradebook import for one assignment (see :func:`canvas_table`)."""
    return canvas_table([column or assignment], [max_score], [(who, [score]) for who, score in lines])


def canvas_table(columns: list[str], possible: list[object], lines: list[tuple[dict, list[str]]]) -> str:
    """Canvas's gradebook import: Student, ID, SIS User ID, SIS Login ID, Section, then one column per
    assignment named "<name> (<Canvas assignment id>)" (a new name makes a new column); a
    "Points Possible" row first. A blank cell leaves the Canvas grade as it is."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["Student", "ID", "SIS User ID", "SIS Login ID", "Section", *columns])
    writer.writerow(["    Points Possible", "", "", "", "", *(_points(m) if m != "" else "" for m in possible)])
    for who, scores in lines:
        writer.writerow([who["name"], who["lms_id"], "", "", "", *scores])
    return out.getvalue()


def _moodle(assignment: str, lines: list[tuple[dict, str]], max_score: object, column: str | None) -> str:
    """Moodle's grading worksheet (Assignment > "Upload grading worksheet"): rows matched by
    Identifier "Participant <id>"; an empty Grade is not imported."""
    return moodle_table(["Grade"], [max_score], [(who, [score]) for who, score in lines])


def moodle_table(columns: list[str], maxima: list[object], lines: list[tuple[dict, list[str]]]) -> str:
    """Moodle's worksheet columns: Identifier, Full name, Email address, then each grade with its
    maximum ("Grade", "Maximum Grade" for one; "<name> Grade", "<name> Maximum Grade" for several),
    then Feedback comments. An empty grade is not imported."""
    out = io.StringIO()
    writer = csv.writer(out)
    pairs = [("Grade", "Maximum Grade") if c == "Grade" else (f"{c} Grade", f"{c} Maximum Grade") for c in columns]
    writer.writerow(["Identifier", "Full name", "Email address", *(n for pair in pairs for n in pair),
                     "Feedback comments"])
    for who, scores in lines:
        cells = [v for score, m in zip(scores, maxima) for v in (score, _points(m) if m != "" else "")]
        writer.writerow([f"Participant {who['lms_id']}", who["name"], "", *cells, ""])
    return out.getvalue()


def print_export_summary(result: LmsExport, lms: str, out: TextIO | None = None) -> None:
    """What the grade file holds, and every row left empty with its reason (on standard error)."""
    out = out or sys.stderr
    print(f"{result.sent} grades for {lms}", file=out)
    if result.withheld:
        print(f"{len(result.withheld)} left empty (not a final grade; the LMS keeps what it has):", file=out)
        for line in result.withheld:
            print(f"  {line}", file=out)
    if result.unknown:
        print(f"{len(result.unknown)} graded students have no {lms} identity (not collected from {lms}): "
              + ", ".join(result.unknown), file=out)
