"""`course similarity`: disguised copies rank above independent answers; shared rare wrong values
raise a pair; given code never counts; hostile submissions are notes, never crashes or markup.

The fixture (tests/fixtures/similarity, see tests/similarity_submissions.py) holds eight
independently written correct answers to each of three cells and disguised copies of four
students' answers.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from browser_support import keep_screenshot, opened
from similarity_submissions import (ASSIGNMENT, CELLS, answers, make_course, notebook, submit, write_record,
                                    write_reference)

from course_tools.grading import similarity
from course_tools.layout import Course
from course_utils import checks

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def course(tmp_path: Path) -> Path:
    """Eight independent students (ind01..ind08) and four disguised copies (dis02, dis04, dis06, dis07)."""
    root = make_course(tmp_path / "course")
    for stem, cells in answers("independent").items():
        submit(root, f"ind{stem[1:]}", cells)
    for stem, cells in answers("disguised").items():
        submit(root, f"dis{stem[1:]}", cells)
    return root


def _copy_pairs() -> set[frozenset]:
    return {frozenset((f"ind{s[1:]}", f"dis{s[1:]}")) for s in answers("disguised")}


def _scores(root: Path) -> dict[frozenset, float]:
    """Every pair's rank score (0 for a pair that shares nothing)."""
    ranking = similarity.rank(Course(root), ASSIGNMENT)
    found = {frozenset((p.a, p.b)): p.score for p in ranking.pairs}
    return {frozenset(pair): found.get(frozenset(pair), 0.0) for pair in itertools.combinations(ranking.answers, 2)}


def test_fixture_answers_are_correct_and_complete() -> None:
    """Every answer, independent or disguised, computes what the task asks (so the fixture is honest)."""
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 4, 5)) * 30
    x, y, w = rng.normal(size=(16, 3)), (rng.random(16) > 0.5).astype(float), rng.normal(size=3)
    data = rng.normal(size=(10, 3)) * 5 + 2
    data[:, 1] = 4.0
    independent, disguised = answers("independent"), answers("disguised")
    assert len(independent) >= 8 and set(disguised) <= set(independent)
    for stem, cells in [*independent.items(), *disguised.items()]:
        assert set(cells) == set(CELLS), stem
        ns: dict = {"np": np}
        for code in cells.values():
            exec(code, ns)  # noqa: S102 (the fixture's own answers)
        for axis in (-1, 0, 1):
            want = np.exp(logits - logits.max(axis, keepdims=True))
            assert np.allclose(ns["softmax"](logits, axis=axis), want / want.sum(axis, keepdims=True)), stem
        p = 1 / (1 + np.exp(-(x @ w + 0.3)))
        new_w, new_b, loss = ns["sgd_step"](w, 0.3, x, y, 0.1)
        assert np.allclose(new_w, w - 0.1 * x.T @ (p - y) / 16) and np.isclose(new_b, 0.3 - 0.1 * np.mean(p - y))
        assert np.isclose(loss, -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))), stem
        std = np.where(data.std(0) > 0, data.std(0), 1.0)
        assert np.allclose(ns["normalise"](data, ns["fit_normaliser"](data)), (data - data.mean(0)) / std), stem


def test_every_disguised_copy_ranks_above_every_independent_pair(course: Path) -> None:
    scores = _scores(course)
    copies = _copy_pairs()
    lowest_copy = min(scores[p] for p in copies)
    highest_other = max(s for p, s in scores.items() if p not in copies)
    assert lowest_copy > highest_other, (lowest_copy, highest_other)
    ranking = similarity.rank(Course(course), ASSIGNMENT)
    assert {frozenset((p.a, p.b)) for p in ranking.pairs[:len(copies)]} == copies


def test_given_code_never_counts(course: Path) -> None:
    """Two students who hand in the release untouched, or only paste its given code, share nothing."""
    given = next(c.source for c in notebook({}).cells if c.source.startswith("def train("))
    submit(course, "blank1", {})
    submit(course, "blank2", {})
    submit(course, "paste1", {"softmax": given})
    submit(course, "paste2", {"softmax": given})
    scores = _scores(course)
    for pair in (("blank1", "blank2"), ("paste1", "paste2"), ("blank1", "paste1")):
        assert scores[frozenset(pair)] == 0.0, pair


# ---------------------------------------------------------------- shared wrong values

GOOD = np.array([0.1, 0.2, 0.7])
RARE_WRONG = np.array([0.3, 0.3, 0.4])  # one bug two students share
COMMON_WRONG = np.array([0.0, 0.0, 1.0])  # a mistake half the class makes


def _payload(label: str, value: object) -> dict:
    return {"label": label, "value": checks.encode(value)}


def _published(probs: np.ndarray, loss: float) -> dict:
    return {"test_softmax": [_payload("softmax sums to one along the axis", probs)],
            "test_sgd_step": [_payload("loss before the step", loss), _payload("loss before the step", loss * 2)]}


def _with_records(root: Path, published: bool) -> None:
    write_reference(root, {
        "test_softmax": [{**_payload("softmax sums to one along the axis", GOOD), "rtol": 1e-5, "atol": 1e-8}],
        "test_sgd_step": [{**_payload("loss before the step", 0.5), "rtol": 1e-5, "atol": 1e-8},
                          {**_payload("loss before the step", 1.0), "rtol": 1e-5, "atol": 1e-8}]})
    everyone = sorted(p.name for p in (root / "submitted").iterdir())
    for n, student in enumerate(everyone):
        probs = RARE_WRONG if student in ("ind01", "ind05") else COMMON_WRONG if n % 2 else GOOD
        write_record(root, student, _published(probs, 0.5) if published else None)


def test_shared_rare_wrong_values_raise_a_pair(course: Path) -> None:
    before = _scores(course)
    _with_records(course, published=False)
    assert _scores(course) == before, "records without published values change nothing"
    _with_records(course, published=True)
    after = _scores(course)
    rare = frozenset(("ind01", "ind05"))
    common = [p for p in after if p not in _copy_pairs() and p != rare and after[p] > before[p]]
    assert common, "pairs sharing the common wrong value gain something"
    assert after[rare] - before[rare] > 2 * max(after[p] - before[p] for p in common)
    others = [s for p, s in after.items() if p not in _copy_pairs() and p != rare]
    assert after[rare] > max(others), "the rare shared wrong value lifts the pair above every other independent pair"
    pair = next(p for p in similarity.rank(Course(course), ASSIGNMENT).pairs if frozenset((p.a, p.b)) == rare)
    assert [(v.test, v.students) for v in pair.shared] == [("test_softmax", 2)]  # correct losses never count


def test_report_page_and_table(course: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    from course_tools.cli import main

    _with_records(course, published=True)
    monkeypatch.setenv("COURSE_ROOT", str(course))
    assert main(["similarity", ASSIGNMENT]) == 0
    out = capsys.readouterr().out
    assert "12 submissions of mini_train compared" in out and "not a finding" in out
    html = Course(course).similarity_page(ASSIGNMENT).read_text()
    assert "accuses no one" in html and "<script" not in html and "<mark>" in html
    assert "Scores: dis02 7 / 7 autograded; ind02 7 / 7 autograded" in html  # from the status records
    table = Course(course).similarity_table(ASSIGNMENT).read_text().splitlines()
    assert table[0].startswith("rank,student_a,student_b,rank_score") and len(table) >= 1 + len(_copy_pairs())


# ---------------------------------------------------------------- hostile submissions


def test_hostile_submissions_are_notes_and_text(course: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.ipynb"
    secret.write_text('{"cells": []}')
    attack = ("def softmax(logits, axis=-1):\n    '</pre><script>alert(1)</script><img src=x onerror=alert(2)>'\n"
              "    e = np.exp(logits - logits.max(axis=axis, keepdims=True))  # <b>bold</b>\n"
              "    total = e.sum(axis=axis, keepdims=True)\n    return e / total\n")
    submit(course, "<b onclick=x>mallory", {"softmax": attack})
    submit(course, "eve&co", {"softmax": attack.replace("total", "z")})
    submit(course, "broken", b'{"cells": [')
    submit(course, "odd", b'{"cells": [1, {"cell_type": "code", "metadata": {"nbgrader": {"grade_id": "softmax"}}, '
                          b'"source": 5}, {"metadata": []}]}')
    linked = course / "submitted" / "linked" / ASSIGNMENT
    linked.mkdir(parents=True)
    (linked / f"{ASSIGNMENT}.ipynb").symlink_to(secret)
    big = course / "submitted" / "big" / ASSIGNMENT
    big.mkdir(parents=True)
    (big / f"{ASSIGNMENT}.ipynb").write_bytes(b" " * (similarity.MAX_NOTEBOOK_BYTES + 1))
    ranking, flagged = similarity.report(Course(course), ASSIGNMENT)
    assert set(ranking.notes) == {"broken", "linked", "big"}
    assert "not a valid notebook" in ranking.notes["broken"] and "a link" in ranking.notes["linked"]
    assert frozenset(("<b onclick=x>mallory", "eve&co")) in {frozenset((p.a, p.b)) for p in flagged}
    html = Course(course).similarity_page(ASSIGNMENT).read_text()
    for raw in ("<script", "<img", "<b onclick", "<b>bold"):
        assert raw not in html, raw
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;b onclick=x&gt;mallory" in html


# ---------------------------------------------------------------- in a browser


def test_page_opens_in_chromium_without_errors(course: Path, tmp_path: Path) -> None:
    """The page as a TA opens it: no console error, a screenshot kept ($SIMILARITY_SHOT also gets a copy)."""
    _with_records(course, published=True)
    similarity.report(Course(course), ASSIGNMENT)
    with opened(Course(course).similarity_page(ASSIGNMENT)) as (page, errors):
        assert page.locator("section").count() >= len(_copy_pairs())
        assert page.locator("mark").count() > 0
        keep_screenshot(page, tmp_path, "similarity", "SIMILARITY_SHOT")
    assert not errors, errors
