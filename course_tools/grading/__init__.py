"""What a TA runs after hand-in.

The coordinator (:mod:`~course_tools.grading.coordinator`) reads the
submissions and writes results; the worker side (:mod:`~course_tools.grading.job`,
:mod:`~course_tools.grading.execute`, :mod:`~course_tools.grading.sandbox`,
:mod:`~course_tools.grading.judge`) grades one submission and never imports
the coordinator, export or feedback. :mod:`~course_tools.grading.status`
defines the statuses every module reports.
"""
