"""The given code of each assignment: ``course_utils/given/<assignment>.py``.

One module per assignment, named exactly like its folder under
``notebooks/``; a notebook imports its own as ``from course_utils.given
import <assignment> as given``. A given module uses only the core of
``course_utils`` (paths, repro, training, plotting, checks, data), never
another assignment's module, and never holds the answer to a graded cell.
"""
