"""``course workspace``: a student's own copies of the released assignments, never overwritten.

JupyterLab for students (``make lab``) opens ``assignments/``; each released assignment is
copied there once. A copy that exists is the student's work and stays as it is, whatever was
released since.
"""

from __future__ import annotations

import shutil

from course_tools.layout import Course


class NothingReleased(RuntimeError):
    """There is no release to copy: the message says what to run first."""


def fill(course: Course) -> list[tuple[str, str]]:
    """Copy each released assignment that the workspace lacks; ``(name, "new" | "kept")`` for each."""
    release, work = course.releases_root(), course.workspace()
    if not release.is_dir():
        raise NothingReleased("Nothing released yet: run `make release` (or `course release`) first.")
    done = []
    for folder in sorted(p for p in release.iterdir() if p.is_dir()):
        target = work / folder.name
        if target.exists():
            done.append((folder.name, "kept"))
            continue
        shutil.copytree(folder, target)
        done.append((folder.name, "new"))
    return done
