"""nbgrader configuration of the course (read by `nbgrader ...` and by the `course` command).

Layout: source notebooks at notebooks/<assignment>/<assignment>.ipynb; student
versions generated into release/; submissions in submitted/<student>/<assignment>/;
grades in gradebook.db; feedback in feedback/. Notebooks run in FAST mode while
nbgrader executes them (see course_utils.paths.is_fast).
"""

import os

c = get_config()  # noqa: F821 (provided by nbgrader when it loads this file)
here = os.path.dirname(os.path.abspath(__file__))

c.CourseDirectory.course_id = "dl-course"
c.CourseDirectory.root = here
c.CourseDirectory.source_directory = "notebooks"
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "*.results.json"]

# What students see in place of a solution. Each code stub's NotImplementedError names what to
# write ("write sample_gaussian: <its docstring's summary>"; course_tools/authoring/stubs.py).
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
from nbgrader.converters import GenerateAssignment  # noqa: E402
from nbgrader.preprocessors import ClearSolutions  # noqa: E402

from course_tools.authoring.stubs import NamedStubs  # noqa: E402

c.GenerateAssignment.preprocessors = [NamedStubs if step is ClearSolutions else step
                                      for step in GenerateAssignment.class_traits()["preprocessors"].default()]

# One cell may run for at most this long during autograding and validation
# (notebooks run in FAST mode then, so a cell normally takes seconds).
c.Execute.timeout = 300
# Kernels keep their start-up notes to themselves (they would print after a command's verdict) and
# their history in memory: the arguments every kernel of the course starts with, named once.
from course_tools.grading.execute import KERNEL_ARGS  # noqa: E402

c.Execute.extra_arguments = list(KERNEL_ARGS)
# A kernel client that cannot sleep through a reply (a cell writing into a widget made stock
# nbclient wait out its whole timeout; course_utils/kernel_client.py says why).
c.Execute.kernel_manager_class = "course_utils.kernel_client.PromptKernelManager"

# Autograding, by `course autograde`, `nbgrader autograde` or the Formgrader alike: the kernel runs
# in a sandbox and test cells are judged outside it, against the reference values that
# `course release` makes from the solution (see course_tools/grading/execute.py). This list, with
# the sanitizer added below, is the whole pipeline: `course autograde` reads it from here.
from nbconvert.preprocessors import ClearMetadataPreprocessor  # noqa: E402
from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, IgnorePattern,  # noqa: E402
                                    LimitOutput, SaveAutoGrades)

from course_tools.grading.execute import GradingExecute  # noqa: E402

c.Autograde.autograde_preprocessors = [GradingExecute, IgnorePattern, ClearMetadataPreprocessor, LimitOutput,
                                       SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]

# Late submissions (course_tools/grading/late.py): due dates from course.toml (or `course release A
# --due ...`), extensions from extensions.csv, hand-in times from timestamp.txt. A submission is late
# by whole days, counted up; grace days from a term budget are spent first, oldest assignment first;
# each late day beyond them costs a share of the score, up to a cap. `course export` and `course term`
# show the lateness, the grace days and the score before and after the penalty.
c.AssignLatePenalties.plugin_class = "course_tools.grading.late.TermLatePolicy"
c.TermLatePolicy.grace_days = 3  # late days in the whole term that cost nothing
c.TermLatePolicy.penalty_per_day = 0.1  # share of the score lost per late day beyond them
c.TermLatePolicy.max_penalty = 0.5  # at most this share: nothing late is zeroed

# A submission that deleted a test cell gets it back and is graded on it.
c.OverwriteCells.add_missing_cells = True

# Release, fetch, submit and collect through a folder inside the course, or through the
# shared exchange of a class server ($COURSE_EXCHANGE, set for every user by deploy/hub.py).
c.Exchange.root = os.environ.get("COURSE_EXCHANGE") or os.path.join(here, "exchange")
c.Exchange.path_includes_course = True

# Feedback: hidden tests removed from the test cells (and only from them: a student's own
# text is never parsed for markers), failed tests shown by their message only.
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor  # noqa: E402
from nbgrader.preprocessors import GetGrades  # noqa: E402

from course_tools.grading.feedback import HideHiddenTests, HideTestTracebacks  # noqa: E402

c.GenerateFeedback.preprocessors = [GetGrades, CSSHTMLHeaderPreprocessor, HideHiddenTests, HideTestTracebacks]

# Feedback that does not mislead: a provisional banner while answers wait for a person, and
# mathematics drawn as MathML, with no MathJax from a CDN (course_tools/grading/feedback_page.py).
from course_tools.grading.feedback_page import MarkProvisional, RenderMath  # noqa: E402

c.GenerateFeedback.preprocessors = [*c.GenerateFeedback.preprocessors, MarkProvisional]

# Student markup never runs in a reader's browser (course_tools/grading/sanitize.py). The notebook
# autograding writes keeps only plain data, clean HTML and checked images of what the submission
# produced (`course autograde` does the same where it writes results). Every page nbconvert makes
# of a notebook, feedback and the Formgrader's view of a submission alike, renders it sanitized:
# HTML, SVG and markdown cleaned against the course's allowlist (which keeps the MathML that
# RenderMath draws formulas with), no scripts, no widget state.
from course_tools.grading.sanitize import SanitizeNotebook  # noqa: E402

c.Autograde.autograde_preprocessors = [*c.Autograde.autograde_preprocessors, SanitizeNotebook]
c.HTMLExporter.sanitize_html = True
c.HTMLExporter.filters = {"clean_html": "course_tools.grading.sanitize.clean_html",
                          "markdown2html": "course_tools.grading.sanitize.markdown2html",
                          "strip_files_prefix": "course_tools.grading.sanitize.strip_files_prefix"}
c.HTMLExporter.preprocessors = [SanitizeNotebook, RenderMath]
