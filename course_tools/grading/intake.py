"""Reading a collected submission as plain files, whatever a student put in it.

The grader reads ``submitted/<student>/<assignment>/`` with its own rights,
so a link there could bring it a file the student may not read (the source
notebook, the gradebook). Only regular files and folders are read; a link,
a device, a pipe or a socket, a name that is not UTF-8 or a folder over the
size limit makes the submission "not graded" with a reason that names the
path, never a word of any file's contents.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from course_tools.grading.job import Submission

MAX_BYTES = 100 * 2**20  # a submission is a notebook and a few small files
SKIPPED = {".ipynb_checkpoints", "__pycache__"}


def _shown(name: str) -> str:
    """A file name as a TA can read it, even when it is not valid UTF-8."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def read_submission(folder: Path, student: str) -> Submission:
    """The submission in ``folder`` as bytes in memory, or one whose ``problem`` says why it cannot be."""
    if not _utf8(student):
        return Submission(_shown(student), {}, problem=f"the student folder's name {_shown(student)!r} is not UTF-8: "
                                                       "rename it to the student's id")
    for path in (folder.parent, folder):
        if path.is_symlink() or not stat.S_ISDIR(os.lstat(path).st_mode):
            return Submission(student, {}, problem=f"{path.name}/ is a link or not a folder: submissions must be "
                                                   "plain folders (collect it again)")
    found, odd, total = [], [], 0
    for root, dirs, names in os.walk(folder, followlinks=False):
        rel_root = Path(root).relative_to(folder)
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED)
        for name in sorted(names) + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            rel = rel_root / name
            mode = os.lstat(os.path.join(root, name)).st_mode
            if not _utf8(str(rel)):
                odd.append(f"{_shown(str(rel))!r} (a name that is not UTF-8)")
            elif stat.S_ISLNK(mode):
                odd.append(f"{rel} (a link)")
            elif not stat.S_ISREG(mode):
                odd.append(f"{rel} (not a regular file)")
            else:
                found.append(rel)
                total += os.lstat(os.path.join(root, name)).st_size
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(root, d))]
    if odd:
        more = f" and {len(odd) - 5} more" if len(odd) > 5 else ""
        return Submission(student, {}, problem="the submission holds what is not a plain file: "
                                               + ", ".join(odd[:5]) + more + ". Remove it and submit again")
    if total > MAX_BYTES:
        return Submission(student, {}, problem=f"the submission is {total / 2**20:.0f} MB, over the limit of "
                                               f"{MAX_BYTES // 2**20} MB: remove large files and submit again")
    files = {str(rel): (folder / rel).read_bytes() for rel in found if str(rel) != "timestamp.txt"}
    stamp = folder / "timestamp.txt"
    timestamp = stamp.read_text(errors="replace").strip()[:64] if Path("timestamp.txt") in found else None
    return Submission(student, files, timestamp)
