"""The tools of TAs and instructors: the ``course`` command and what it drives.

- :mod:`course_tools.cli`          the ``course`` command: arguments in, the module that works called
- :mod:`course_tools.layout`       where everything of a course lives (release/, submitted/, ...)
- :mod:`course_tools.config`       nbgrader's configuration, loaded as ``nbgrader`` loads it
- :mod:`course_tools.assignments`  reading source notebooks: graded cells, points
- :mod:`course_tools.markers`      nbgrader's marker regions, named and scanned once
- :mod:`course_tools.testcells`    a test cell's student version, as the grader runs it
- :mod:`course_tools.scratch`      throw-away courses to release in (grading.variants grades them)
- :mod:`course_tools.authoring`    what instructors run before a release: selfcheck, mutants, runner
- :mod:`course_tools.grading`      what TAs run after hand-in: autograde, its sandboxed workers,
  statuses, export and feedback

The modules above the two sub-packages are shared by both; authoring may use
grading (selfcheck grades its variants as submissions), grading never imports
authoring, and no module is part of an import cycle. Students never need this package.
"""
