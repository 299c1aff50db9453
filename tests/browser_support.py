"""Opening a course page in headless Chromium (Playwright, Debian's `chromium`) as a TA opens it: every
console error and page error collected, for the pages `course` writes (similarity, report)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def chromium() -> str | None:
    """The Chromium to drive: $CHROMIUM, else the first on the PATH."""
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and (found := shutil.which(name)):
            return found
    return None


@contextmanager
def opened(path: Path, width: int = 1280, height: int = 900) -> Iterator[tuple[object, list[str]]]:
    """The page at ``path`` open in headless Chromium, and the errors it logs (filled as they come).
    Skips the test where Playwright or Chromium is not installed."""
    sync_api = pytest.importorskip("playwright.sync_api")
    executable = chromium()
    if executable is None:
        pytest.skip("Chromium is not installed (Debian: apt install chromium)")
    errors: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(path.as_uri())
            yield page, errors
        finally:
            browser.close()


def keep_screenshot(page: object, folder: Path, name: str, copy_to_env: str) -> Path:
    """A screenshot of the visible page in ``folder`` (checked to hold a picture), copied to the
    file ``$<copy_to_env>`` names when it is set (how the README's pictures are made)."""
    shot = folder / f"{name}.png"
    page.screenshot(path=str(shot), full_page=False)  # type: ignore[attr-defined]
    assert shot.stat().st_size > 10_000
    if os.environ.get(copy_to_env):
        shutil.copy(shot, os.environ[copy_to_env])
    return shot
