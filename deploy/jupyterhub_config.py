"""JupyterHub for one class on one machine (written by `deploy/hub.py install`, read by `jupyterhub -f`).

Students and staff (instructors and TAs) are local Unix accounts, in the groups
`<course>-students` and `<course>-staff`; PAM checks their passwords. Each user's
JupyterLab runs as that user, from the course environment, with the course's shared
nbgrader exchange. Staff servers open on the course folder (private to the staff group)
with the Formgrader; students' servers open on their home folder with the Assignments
tab and Validate only. Everything this file needs is in `course-hub.json` beside it.
"""

import grp
import json
import os
from pathlib import Path

from jupyterhub.spawner import LocalProcessSpawner

c = get_config()  # noqa: F821 (provided by jupyterhub when it loads this file)
SETTINGS = json.loads((Path(__file__).resolve().parent / "course-hub.json").read_text())
STATE = Path(SETTINGS["state"])
ENV_BIN = Path(SETTINGS["env"]) / "bin"


def is_staff(name: str) -> bool:
    """Membership of the staff group, read at each spawn: adding a TA needs no hub restart."""
    return name in grp.getgrnam(SETTINGS["staff_group"]).gr_mem


class CourseSpawner(LocalProcessSpawner):
    """A local process per user; staff files are group-writable (umask 002) so TAs share the course folder."""

    def make_preexec_fn(self, name: str):  # noqa: ANN201 (returns JupyterHub's callable)
        become_user = super().make_preexec_fn(name)
        umask = 0o002 if is_staff(name) else 0o022

        def preexec() -> None:
            become_user()
            os.umask(umask)

        return preexec


def course_roles(spawner: LocalProcessSpawner) -> None:
    """Before each spawn: staff open on the course folder with the staff configuration
    (Formgrader on, the course's own nbgrader_config.py loaded); students keep the defaults."""
    if not is_staff(spawner.user.name):
        return
    spawner.notebook_dir = SETTINGS["course_dir"]
    spawner.environment = {**spawner.environment, "COURSE_ROOT": SETTINGS["course_dir"],
                           "JUPYTER_CONFIG_PATH": SETTINGS["staff_config"], "JUPYTER_PATH": SETTINGS["staff_data"]}


c.JupyterHub.bind_url = f"http://{SETTINGS['ip']}:{SETTINGS['port']}"
c.JupyterHub.hub_port = SETTINGS["hub_port"]
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{SETTINGS['proxy_api_port']}"
c.ConfigurableHTTPProxy.command = [SETTINGS["proxy"]]
c.ConfigurableHTTPProxy.pid_file = str(STATE / "proxy.pid")
c.JupyterHub.db_url = f"sqlite:///{STATE / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(STATE / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(STATE / "jupyterhub.pid")

c.JupyterHub.authenticator_class = "pam"
c.PAMAuthenticator.allowed_groups = {SETTINGS["students_group"], SETTINGS["staff_group"]}

c.JupyterHub.spawner_class = CourseSpawner
c.Spawner.cmd = [str(ENV_BIN / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.environment = {
    "PATH": f"{ENV_BIN}:/usr/local/bin:/usr/bin:/bin",
    "COURSE_EXCHANGE": SETTINGS["exchange"],  # read by the course's nbgrader_config.py
    # The notebooks are sized for a two-core laptop: two threads per kernel keep thirty students'
    # torch from fighting over every core of the server at once.
    "OMP_NUM_THREADS": "2",
}
if SETTINGS["data"]:
    c.Spawner.environment["COURSE_DATA"] = SETTINGS["data"]  # the shared, read-only data cache
c.Spawner.pre_spawn_hook = course_roles
# A busy two-core machine can take a minute to start a JupyterLab.
c.Spawner.start_timeout = 300
c.Spawner.http_timeout = 300
