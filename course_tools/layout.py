"""The course folder's layout: the one module that knows where each thing lives.

nbgrader names its folders in its configuration (``CourseDirectory``:
``source_directory``, ``release_directory``, ``submitted_directory``, ...) and
joins them with ``CourseDirectory.format_path``; this module asks it, so a
course that renames a folder in ``nbgrader_config.py`` is followed
everywhere. The course kit's own folders (status records of grading, the
student workspace, mutants) are named here too. No other module joins these
folder names by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from course_utils.paths import repo_root

GRADEBOOK_FILE = "gradebook.db"  # nbgrader's gradebook, where the configuration names no other
GRADING_DIR = "grading"  # status records (grading/<assignment>/<student>.json) and reference values
WORKSPACE_DIR = "assignments"  # a student's own copies of the released notebooks (course workspace)
LMS_DIR = "lms"  # lms/<assignment>.csv: who each submitter is on the LMS; lms/replaced/: superseded uploads
COURSE_FILE = "course.toml"  # the term under version control: due dates, weights, time zone
EXTENSIONS_FILE = "extensions.csv"  # per-student extensions, the TA's file: student,assignment,due or days
SIMILARITY_DIR = "similarity"  # similarity/<assignment>.html and .csv: pairs of alike submissions, ranked
REPORT_DIR = "report"  # report/<assignment>.html and .csv (term.html, term.csv for the term): what to reteach
NOT_GRADED_NOTE = "NOT-GRADED.txt"  # in a student's feedback folder: why the submission has no score


@dataclass(frozen=True)
class Course:
    """One course folder: its nbgrader configuration and where every step's files live."""

    root: Path
    config: Any = field(default=None, compare=False, repr=False)  # a traitlets Config; loaded on first use

    @classmethod
    def current(cls, config: Any = None) -> "Course":
        """The course the ``course`` command works on (``$COURSE_ROOT``, else this checkout)."""
        return cls(repo_root(), config)

    @cached_property
    def nbgrader_config(self) -> Any:
        from course_tools.config import load_config

        return self.config if self.config is not None else load_config(self.root)

    @cached_property
    def _coursedir(self) -> Any:
        from nbgrader.coursedir import CourseDirectory

        coursedir = CourseDirectory(config=self.nbgrader_config)
        coursedir.root = str(self.root)
        return coursedir

    def _step(self, step: str, student: str, assignment: str) -> Path:
        cd = self._coursedir
        return Path(cd.format_path(getattr(cd, f"{step}_directory"), student, assignment))

    # ------------------------------------------------------------ nbgrader's folders

    def source(self, assignment: str) -> Path:
        """``notebooks/<assignment>/``: the instructor's source, solutions and hidden tests inside."""
        return self._step("source", ".", assignment)

    def source_notebook(self, assignment: str) -> Path:
        return self.source(assignment) / f"{assignment}.ipynb"

    def sources_root(self) -> Path:
        return self.root / self._coursedir.source_directory

    def release(self, assignment: str) -> Path:
        return self._step("release", ".", assignment)

    def releases_root(self) -> Path:
        return self.root / self._coursedir.release_directory

    def submitted(self, student: str, assignment: str) -> Path:
        return self._step("submitted", student, assignment)

    def submissions_root(self) -> Path:
        return self.root / self._coursedir.submitted_directory

    def autograded(self, student: str, assignment: str) -> Path:
        return self._step("autograded", student, assignment)

    def feedback(self, student: str, assignment: str) -> Path:
        return self._step("feedback", student, assignment)

    def not_graded_note(self, student: str, assignment: str) -> Path:
        return self.feedback(student, assignment) / NOT_GRADED_NOTE

    def gradebook_url(self) -> str:
        """The gradebook's SQLAlchemy URL: the configured one, else ``gradebook.db`` in the course."""
        return self.nbgrader_config.CourseDirectory.get("db_url") or f"sqlite:///{self.root / GRADEBOOK_FILE}"

    def gradebook_file(self) -> Path:
        """The gradebook's SQLite file (a grading job writes the assignment's entry there); a course whose
        gradebook is a database server has none."""
        url = self.gradebook_url()
        if not url.startswith("sqlite:///"):
            raise ValueError(f"the gradebook is not an SQLite file: {url}")
        return Path(url.removeprefix("sqlite:///"))

    # ------------------------------------------------------------ the course kit's own

    def status_dir(self, assignment: str) -> Path:
        return self.root / GRADING_DIR / assignment

    def status_file(self, assignment: str, student: str) -> Path:
        return self.status_dir(assignment) / f"{student}.json"

    def reference_file(self, assignment: str) -> Path:
        """What the solution's hidden tests published in a clean kernel: what submissions are judged against."""
        return self.root / GRADING_DIR / f"{assignment}.reference.json"

    def course_file(self) -> Path:
        """``course.toml``: each assignment's due date and weight in the term (course_tools/grading/deadlines.py)."""
        return self.root / COURSE_FILE

    def extensions_file(self) -> Path:
        """``extensions.csv``: the extensions a TA granted, one row per student and assignment."""
        return self.root / EXTENSIONS_FILE

    def similarity_page(self, assignment: str) -> Path:
        """``similarity/<assignment>.html``: pairs of submissions whose answers are alike, for a person to read."""
        return self.root / SIMILARITY_DIR / f"{assignment}.html"

    def similarity_table(self, assignment: str) -> Path:
        """``similarity/<assignment>.csv``: the same ranking as a table."""
        return self.root / SIMILARITY_DIR / f"{assignment}.csv"

    def report_page(self, assignment: str | None = None) -> Path:
        """``report/<assignment>.html`` (``report/term.html`` for the whole term): what students fail, for an
        instructor deciding what to teach again."""
        return self.root / REPORT_DIR / f"{assignment or 'term'}.html"

    def report_table(self, assignment: str | None = None) -> Path:
        """``report/<assignment>.csv`` (``report/term.csv``): the same numbers as one table."""
        return self.root / REPORT_DIR / f"{assignment or 'term'}.csv"

    def mutant_candidates(self, assignment: str) -> Path:
        """``report/<assignment>.mutant-candidates.toml``: the commonest wrong answers as mutants, for an
        instructor to review before any goes into :meth:`mutants_file`."""
        return self.root / REPORT_DIR / f"{assignment}.mutant-candidates.toml"

    def lms_dir(self) -> Path:
        """``lms/``: what ``course collect-zip`` learnt of each submitter (LMS ids for the grade files)."""
        return self.root / LMS_DIR

    def kit_file(self, assignment: str) -> Path:
        """The assignment's own gradebook entry, as released from its source (what each grading task gets)."""
        return self.root / GRADING_DIR / f"{assignment}.kit.db"

    def workspace(self) -> Path:
        return self.root / WORKSPACE_DIR

    def mutants_file(self, assignment: str) -> Path:
        """``tests/mutants/<assignment>.toml``: outside the assignment folder, so never released."""
        return self.root / "tests" / "mutants" / f"{assignment}.toml"
