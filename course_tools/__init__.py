"""The tools of TAs and instructors: the ``course`` command and what it drives.

- :mod:`course_tools.cli`          the ``course`` command (a thin front end)
- :mod:`course_tools.layout`       where everything of a course lives (release/, submitted/, ...)
- :mod:`course_tools.config`       nbgrader's configuration, loaded as ``nbgrader`` loads it
- :mod:`course_tools.assignments`  reading source notebooks: graded cells, points, markers
- :mod:`course_tools.scratch`      throw-away courses to release and grade in
- :mod:`course_tools.authoring`    what instructors run before a release: selfcheck, mutants, runner
- :mod:`course_tools.grading`      what TAs run after hand-in: autograde, its sandboxed workers,
  statuses, export and feedback

The modules above the two sub-packages are shared by both; authoring and
grading never import each other. Students never need this package.
"""
