"""nbgrader settings of the student kit: the student side only.

Read by JupyterLab's Assignments tab and Validate button (started by `make lab` from this
folder) and by `nbgrader fetch_assignment`, `nbgrader validate` and `nbgrader submit` run here.
It names the course and the exchange the course's server shares; it points at no folder of the
instructors (sources, submissions, gradebook). Your work lives in @COURSE_ID@/<assignment>/,
the layout nbgrader's exchange uses.
"""

import os

c = get_config()  # noqa: F821 (provided by nbgrader when it loads this file)

c.CourseDirectory.course_id = @COURSE_ID_REPR@
c.Exchange.path_includes_course = @PATH_INCLUDES_COURSE@

# The exchange: the folder through which assignments are fetched and submitted on the course's
# server. $COURSE_EXCHANGE names it; unset, nbgrader's default (/srv/nbgrader/exchange) applies,
# or whatever the server's own nbgrader_config.py says. Without an exchange (your own laptop),
# hand in as your course says (README.md, "Handing in").
if os.environ.get("COURSE_EXCHANGE"):
    c.Exchange.root = os.environ["COURSE_EXCHANGE"]

# Validate runs the notebook as grading will: in FAST mode, each cell for at most this long.
c.Execute.timeout = @EXECUTE_TIMEOUT@
c.Execute.extra_arguments = @EXECUTE_ARGUMENTS@
# A kernel client that cannot sleep through a reply: with the stock one, a cell that writes into a
# widget sometimes waited out its whole timeout (course_utils/kernel_client.py says why).
c.Execute.kernel_manager_class = "course_utils.kernel_client.PromptKernelManager"
