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
# Kernels keep their start-up notes to themselves: they would print after a command's verdict.
c.Execute.extra_arguments = ["--IPKernelApp.log_level=ERROR"]

# A submission that deleted a test cell gets it back and is graded on it.
c.OverwriteCells.add_missing_cells = True

# Release, fetch, submit and collect through a folder inside the course, or through the
# shared exchange of a class server ($COURSE_EXCHANGE, set for every user by deploy/hub.py).
c.Exchange.root = os.environ.get("COURSE_EXCHANGE") or os.path.join(here, "exchange")
c.Exchange.path_includes_course = True

# Feedback: hidden tests removed from the cells, and failed tests shown by
# their message only, never by the traceback lines of hidden code.
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor  # noqa: E402
from nbgrader.preprocessors import ClearHiddenTests, GetGrades  # noqa: E402

from course_tools.grading.feedback import HideTestTracebacks  # noqa: E402

c.GenerateFeedback.preprocessors = [GetGrades, CSSHTMLHeaderPreprocessor, ClearHiddenTests, HideTestTracebacks]

# Feedback that does not mislead: a provisional banner while answers wait for a person, and
# mathematics drawn as MathML, with no MathJax from a CDN (course_tools/grading/feedback_page.py).
from course_tools.grading.feedback_page import MarkProvisional, RenderMath  # noqa: E402

c.GenerateFeedback.preprocessors = [*c.GenerateFeedback.preprocessors, MarkProvisional, RenderMath]
