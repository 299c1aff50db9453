"""What a submission leaves behind reaches neither the machine nor the next submission.

1. The grader, as root, hands the sandbox's writable folders to the kernel's user before each kernel
   start, also after a kernel died; a submission that planted links there (to a file and a folder
   outside, and hard links) must not get anything outside handed over.
2. A warm worker forks one kernel per submission; whatever one kernel leaves (SysV and POSIX IPC
   objects, /dev/shm and /tmp files, abstract sockets, processes) must be gone for the next one.

Both grade real submissions of the toy assignment (tests/fixtures/toy) through ``job.grade``.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import nbformat
import pytest
from toy_submissions import FULL, edited, hidden_lines, solution

from course_tools import cli
from course_tools.grading.job import Settings

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the grader hands folders to another user only as root")


def _kit(settings: Settings):
    """The released toy assignment, with its reference values, ready for ``job.grade``."""
    from course_tools.grading import reference
    from course_tools.grading.coordinator import make_kit
    from course_tools.layout import Course

    assert cli.main(["release", "toy"]) == 0
    kit = make_kit(Course.current(), "toy")
    kit.reference = reference.check_solution_run(kit, reference.run_solution(Course.current(), kit, settings))
    return kit


def _grade(kit, student: str, nb: nbformat.NotebookNode, settings: Settings):
    from course_tools.grading import job

    outcome = job.grade(kit, job.Submission(student, {"toy.ipynb": nbformat.writes(nb).encode()}), settings)
    outputs = [o.get("text") or o.get("evalue") for c in json.loads(outcome.notebooks.get("toy", '{"cells": []}'))["cells"]
               for o in c.get("outputs", [])]
    return outcome, outputs


# ---------------------------------------------------------------- 1. links planted for root's housekeeping

LINKS = """import os, sys
_run = os.path.dirname(sys.argv[sys.argv.index('-f') + 1])
for _where in ('.', _run):
    for _name, _target in (('to_file', {file!r}), ('to_folder', {folder!r})):
        os.symlink(_target, os.path.join(_where, _name))
    os.makedirs(os.path.join(_where, 'inner'), exist_ok=True)
    os.symlink({folder!r}, os.path.join(_where, 'inner', 'deeper'))
    open(os.path.join(_where, 'mine'), 'w').write('x')
    for _source in ({file!r}, os.path.join(_where, 'mine'), os.path.join(_run, 'kernel.json')):
        try:
            os.link(_source, os.path.join(_where, 'hard-' + os.path.basename(_source)))
        except OSError:
            pass
os._exit(1)
"""


def _outside(tmp_path: Path) -> tuple[Path, Path, dict[Path, tuple]]:
    """A root-owned file and folder outside the course, and how each looks now."""
    outside = tmp_path / "outside"
    folder = outside / "folder"
    folder.mkdir(parents=True)
    (folder / "inside.txt").write_text("root's own, inside")
    secret = outside / "secret.txt"
    secret.write_text("root's own")
    for path, mode in ((outside, 0o700), (folder, 0o750), (folder / "inside.txt", 0o640), (secret, 0o600)):
        os.chown(path, 0, 0)
        path.chmod(mode)
    return secret, folder, _looks(outside)


def _looks(top: Path) -> dict[Path, tuple]:
    """Owner, group, mode and contents of everything under ``top``."""
    seen = {}
    for path in [top, *sorted(top.rglob("*"))]:
        st = path.lstat()
        seen[path] = (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), path.read_text() if path.is_file() else None)
    return seen


@pytest.mark.slow
@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
def test_links_a_submission_planted_are_never_followed(toy_course: Path, tmp_path: Path, warm: bool) -> None:
    """A cell plants links to a root-owned file and folder outside, then ends its kernel; the
    grader restarts the kernel (handing the folders over again) and goes on: nothing outside changes."""
    secret, folder, before = _outside(tmp_path)
    settings = Settings(cell_timeout=30, run_timeout=180, memory_mib=4096, processes=64, warm_kernels=warm)
    kit = _kit(settings)
    nb = solution(toy_course)
    nb.cells.insert(1, nbformat.v4.new_code_cell(LINKS.format(file=str(secret), folder=str(folder))))
    outcome, outputs = _grade(kit, "linker", nb, settings)
    assert outcome.report.get("kernel_deaths"), (outcome.reason, outputs)  # the links were planted, then a restart
    assert {k: v[0] for k, v in outcome.scores.items() if k.startswith("test_")} == FULL, (outcome.reason, outputs)
    assert bool(outcome.report.get("warm")) == warm, outcome.report
    assert _looks(secret.parent) == before


# ---------------------------------------------------------------- 2. nothing of one submission meets the next

IPC = """import ctypes, ctypes.util, os, platform, socket, struct
_libc = ctypes.CDLL(None, use_errno=True)
_libc.shmat.restype = ctypes.c_void_p
_rt = _libc if hasattr(_libc, 'mq_open') else ctypes.CDLL(ctypes.util.find_library('rt'), use_errno=True)
_KEYCTL = {'x86_64': (248, 250), 'aarch64': (217, 219)}.get(platform.machine())  # add_key, keyctl
"""

PLANT = IPC + """
_planted = set()
def _plant(text):
    '''Leave ``text`` everywhere a process can leave something that outlives it.'''
    data = text.encode()[-4000:]
    shm = _libc.shmget(0x5EED, 65536, 0o1000 | 0o666)
    if shm >= 0 and ctypes.memmove(_libc.shmat(shm, None, 0), data, len(data)):
        _planted.add('shm')
    msg = _libc.msgget(0x5EED, 0o1000 | 0o666)
    if msg >= 0 and _libc.msgsnd(msg, ctypes.create_string_buffer(struct.pack('l', 1) + data), len(data),
                                 0o4000) == 0:
        _planted.add('msg')
    if _libc.semget(0x5EED, 1, 0o1000 | 0o666) >= 0:
        _planted.add('sem')
    mq = _rt.mq_open(b'/planted', 0o100 | 0o2 | 0o4000, 0o666, None)
    if mq >= 0 and _rt.mq_send(mq, data, len(data), 0) == 0:
        _planted.add('mq')
    for where in ('/dev/shm/planted', '/tmp/planted'):
        try:
            open(where, 'a').write(text)
            _planted.add(where)
        except OSError:
            pass
    if _KEYCTL and _libc.syscall(_KEYCTL[0], b'user', b'planted', data, len(data), -4) >= 0:
        _planted.add('key')  # in the user keyring
    if os.fork() == 0:  # a process that lives on, serving it on an abstract socket
        try:
            os.setsid()
            _libc.prctl(15, b'planted', 0, 0, 0)
            server = socket.socket(socket.AF_UNIX)
            server.bind('\\0planted-' + str(os.getpid()))
            server.listen(4)
            while True:
                server.accept()[0].sendall(data)
        finally:
            os._exit(0)

import inspect as _inspect
_plant('planted at the start')
_real_square = lambda x: x * x
def square(x):
    _plant(''.join(''.join(f.code_context or []) for f in _inspect.stack()))  # the judged test's code
    return _real_square(x)
print('planted:', sorted(_planted))
"""
KINDS = ["'/tmp/planted'", "'key'", "'mq'", "'msg'", "'sem'", "'shm'"]  # /dev/shm: where the kernel may write

HARVEST = IPC + """
_found = {}
for _kind in ('shm', 'msg', 'sem'):
    _rows = open('/proc/sysvipc/' + _kind).read().splitlines()[1:]
    if _rows:
        _found['sysv ' + _kind] = _rows
_shm = _libc.shmget(0x5EED, 0, 0)
if _shm >= 0:
    _found['shm text'] = ctypes.string_at(_libc.shmat(_shm, None, 0o10000), 4000)
_msg = _libc.msgget(0x5EED, 0)
if _msg >= 0:
    _buf = ctypes.create_string_buffer(8200)
    _n = _libc.msgrcv(_msg, _buf, 8000, 0, 0o4000)
    _found['msg text'] = _buf.raw[8:8 + max(_n, 0)]
_mq = _rt.mq_open(b'/planted', 0o4000, 0, None)
if _mq >= 0:
    _buf = ctypes.create_string_buffer(1 << 20)
    _n = _rt.mq_receive(_mq, _buf, 1 << 20, None)
    _found['mq text'] = _buf.raw[:max(_n, 0)]
for _where in ('/dev/shm', '/tmp'):
    for _name in os.listdir(_where):
        if 'planted' in _name or _where == '/dev/shm':
            _found[_where + '/' + _name] = open(os.path.join(_where, _name), 'rb').read()
_unix = [l for l in open('/proc/net/unix').read().splitlines() if '@planted' in l]
for _line in _unix:
    _client = socket.socket(socket.AF_UNIX)
    try:
        _client.connect('\\0' + _line.split('@', 1)[1].strip())
        _found['abstract socket'] = _client.recv(8000)
    except OSError as _exc:
        _found['abstract socket'] = _line
for _pid in filter(str.isdigit, os.listdir('/proc')):
    try:
        if open(f'/proc/{_pid}/comm').read().strip() == 'planted':
            _found['process'] = _pid
    except OSError:
        pass
if _KEYCTL:
    _key = _libc.syscall(_KEYCTL[1], 10, -4, b'user', b'planted', 0)  # KEYCTL_SEARCH the user keyring
    if _key >= 0:
        _buf = ctypes.create_string_buffer(8000)
        _n = _libc.syscall(_KEYCTL[1], 11, _key, _buf, 8000)  # KEYCTL_READ
        _found['key'] = _buf.raw[:max(_n, 0)]
print(_found)
assert not _found, 'leftovers of an earlier submission'
"""


@pytest.mark.slow
def test_a_warm_worker_gives_each_submission_fresh_namespaces(toy_course: Path) -> None:
    """A planter leaves every kind of leftover, holding the code of the tests its function was
    judged with; a harvester graded next on the same warm worker finds none, nor a hidden test."""
    settings = Settings(cell_timeout=30, run_timeout=180, memory_mib=4096, processes=64, warm_kernels=True)
    kit = _kit(settings)
    secret = [*hidden_lines(toy_course), "square of a negative", "mean_square must average", "_xs = [-1.0"]
    for student, prefix in (("planter", PLANT), ("harvester", HARVEST)):
        nb = edited(toy_course, "square", prefix=prefix)
        outcome, outputs = _grade(kit, student, nb, settings)
        assert outcome.report.get("warm"), outcome.report  # it ran on the warm path
        assert outcome.status == "graded", (student, outcome.reason, outputs)
        assert {k: v[0] for k, v in outcome.scores.items() if k.startswith("test_")} == FULL, \
            (student, outcome.reason, outputs)
        if student == "planter":  # every kind of leftover was left (an abstract socket and a process too)
            planted = json.dumps(outputs).partition("planted:")[2]
            assert all(kind in planted for kind in KINDS), outputs
    shown = json.dumps(outputs)
    assert "{}" in shown, outputs  # the harvester looked, and found nothing
    for line in secret:
        assert line not in shown, line
