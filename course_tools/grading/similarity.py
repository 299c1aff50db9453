"""``course similarity``: pairs of submissions whose answers are alike, ranked for a person to read.

Two kinds of evidence, neither of them a verdict:

- **Code.** Each answer cell (nbgrader ``solution: true`` code cells, matched
  by grade id) is fingerprinted with copydetect, MOSS-style winnowing over
  code whose names, strings, comments and layout are normalised away, so a
  renamed, re-commented or reordered copy keeps its fingerprints. Everything
  the released notebook hands out (its stubs and given code) is boilerplate:
  its fingerprints never count. A pair's code similarity is the mean over the
  cells both answered of the overlap fraction both ways, weighted by how much
  code each cell holds.
- **Behaviour**, which only this grader has: the values each run published
  for the hidden expectations (``"published"`` in the status records).
  Two submissions that give the *same wrong value* for the same expectation
  (wrong as :mod:`course_tools.grading.judge` compares it with the
  reference) rarely got there independently, the less so the fewer
  students share that value. Each shared wrong value weighs
  ``log(N / n) / log(N)`` (n of the N judged students gave it); a pair's
  evidence is ``1 - prod(1 - weight)``.

A pair's rank score is its code similarity plus half its evidence. The
report, ``similarity/<A>.html`` (self-contained, no scripts, every student
text escaped) and ``similarity/<A>.csv``, lists the pairs above a threshold,
each with both answers side by side and the matching code marked. Submissions
are read as the grader reads them (:func:`course_tools.grading.intake.read_submission`:
plain files only, never a link), and one that cannot be read is a note on the
page, never the end of the run.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import itertools
import json
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from course_tools.grading import status
from course_tools.grading.intake import read_submission
from course_tools.grading.judge import judge
from course_tools.layout import Course
from course_utils.checks import Published, stored_list

NOISE = 25  # characters of normalised code a match must span (copydetect's default noise threshold)
WINDOW = 1  # winnowing window: guarantee threshold = noise threshold, every fingerprint kept
MAX_NOTEBOOK_BYTES = 20 * 2**20  # a notebook larger than this is not parsed (a note says so)
MAX_CELL_CHARS = 100_000  # code of one answer cell that is fingerprinted; the rest is cut (a note says so)
EVIDENCE_WEIGHT = 0.5  # how much shared wrong values add to a pair's rank score, at most
THRESHOLD = 0.4  # rank score from which a pair is listed
TOP = 100  # pairs shown in full on the page
SHOWN_CHARS = 300  # characters of a published value shown on the page

EXPLANATION = (
    "This page ranks pairs of submissions for a person to read; it accuses no one. Answers to the same "
    "task can be alike for innocent reasons (a short answer, a common idiom, the same textbook, working "
    "together where that was allowed). Read both answers, and what each student can say about them, "
    "before drawing any conclusion.")


# ---------------------------------------------------------------- reading answers


@dataclass
class Answers:
    """One submission's answer cells (grade id -> code), or a note on why there are none."""

    student: str
    cells: dict[str, str] = field(default_factory=dict)
    note: str = ""


def release_cells(course: Course, assignment: str) -> tuple[list[str], str]:
    """The answer cells' grade ids, in order, and all the code the release hands out (the boilerplate)."""
    nb = json.loads((course.release(assignment) / f"{assignment}.ipynb").read_text(encoding="utf-8"))
    answers, given = [], []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        given.append(_source(cell))
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("solution") and isinstance(meta.get("grade_id"), str):
            answers.append(meta["grade_id"])
    return answers, "\n\n".join(given)


def _source(cell: dict) -> str:
    """A cell's source whatever shape a hand-edited notebook gives it ('' when it is not text)."""
    source = cell.get("source", "")
    if isinstance(source, list) and all(isinstance(line, str) for line in source):
        return "".join(source)
    return source if isinstance(source, str) else ""


def read_answers(course: Course, assignment: str, student: str, wanted: list[str]) -> Answers:
    """The answer cells of one submission, read as plain files (never through a link), bounded in size."""
    sub = read_submission(course.submitted(student, assignment), student)
    if sub.problem:
        return Answers(sub.student, note=sub.problem)
    name = f"{assignment}.ipynb"
    raw = sub.files.get(name)
    if raw is None:
        return Answers(student, note=f"no {name} in the submission")
    if len(raw) > MAX_NOTEBOOK_BYTES:
        return Answers(student, note=f"{name} is {len(raw) / 2**20:.0f} MB, over the {MAX_NOTEBOOK_BYTES // 2**20} "
                                     "MB read for comparison (clear its outputs to compare it)")
    try:
        nb = json.loads(raw.decode("utf-8"))
        cells = nb["cells"] if isinstance(nb, dict) and isinstance(nb.get("cells"), list) else None
    except (UnicodeDecodeError, ValueError, RecursionError):
        cells = None
    if cells is None:
        return Answers(student, note=f"{name} is not a valid notebook (not JSON with a list of cells): skipped")
    return _answer_cells(student, cells, set(wanted))


def _answer_cells(student: str, cells: list, wanted: set[str]) -> Answers:
    found: dict[str, str] = defaultdict(str)
    for cell in cells:
        meta = cell.get("metadata") if isinstance(cell, dict) else None
        grading = meta.get("nbgrader") if isinstance(meta, dict) else None
        if not isinstance(grading, dict) or cell.get("cell_type") != "code" or grading.get("grade_id") not in wanted:
            continue
        found[grading["grade_id"]] += _source(cell) + "\n"
    cut = [gid for gid, code in found.items() if len(code) > MAX_CELL_CHARS]
    note = f"answer cells over {MAX_CELL_CHARS} characters compared in part: {', '.join(cut)}" if cut else ""
    return Answers(student, {gid: code[:MAX_CELL_CHARS] for gid, code in found.items()}, note)


# ---------------------------------------------------------------- code similarity


def _fingerprint(code: str, boilerplate: np.ndarray, name: str):  # noqa: ANN202 (copydetect's CodeFingerprint)
    from copydetect import CodeFingerprint

    return CodeFingerprint(name, NOISE, WINDOW, boilerplate, fp=io.StringIO(code), language="python")


def fingerprints(answers: list[Answers], given: str) -> dict[str, dict]:
    """student -> grade id -> copydetect fingerprint of that answer, given code removed.

    Cells left with no fingerprint of their own (a stub left as it was, a
    copy of given code) are dropped: there is nothing of the student's to compare.
    """
    base = _fingerprint(given, np.array([]), "release.py")
    boilerplate = np.unique(np.array(sorted(base.hashes), dtype=np.int64))
    out: dict[str, dict] = {}
    for a in answers:
        prints = {gid: _fingerprint(code, boilerplate, f"{a.student}/{gid}.py") for gid, code in a.cells.items()}
        out[a.student] = {gid: fp for gid, fp in prints.items() if fp.hashes}
    return out


def cell_similarity(fp1, fp2) -> float:  # noqa: ANN001
    """Overlap of two answers of one cell, both ways, averaged (0 when they share no fingerprint)."""
    from copydetect import compare_files

    if not fp1.hashes & fp2.hashes:
        return 0.0
    _, (sim1, sim2), _ = compare_files(fp1, fp2)
    return float(sim1 + sim2) / 2


def code_similarity(prints1: dict, prints2: dict) -> tuple[float, dict[str, float]]:
    """The pair's similarity (size-weighted mean over the cells both answered) and each cell's."""
    cells = {gid: cell_similarity(prints1[gid], prints2[gid]) for gid in prints1.keys() & prints2.keys()}
    weights = {gid: prints1[gid].token_coverage + prints2[gid].token_coverage for gid in cells}
    total = sum(weights.values())
    return (sum(cells[g] * weights[g] for g in cells) / total if total else 0.0), cells


# ---------------------------------------------------------------- shared wrong values


@dataclass
class WrongValue:
    """One value a student's run published for one expectation that the reference says is wrong."""

    test: str
    label: str
    occurrence: int
    value: dict  # as checks.encode made it
    students: int = 0  # how many students published exactly this wrong value
    judged: int = 0  # how many students' runs published a value for this expectation
    weight: float = 0.0  # rarity: log(judged / students) / log(judged)


def reference_values(course: Course, assignment: str) -> dict[str, list[Published]]:
    """Test grade id -> what the solution published: the values the status records were judged against.

    Read without :func:`course_tools.grading.reference.load`'s freshness check: a
    reference made before a later edit is still what those records were judged by.
    """
    path = course.reference_file(assignment)
    if not path.is_file():
        return {}
    stored = json.loads(path.read_text())
    return {gid: stored_list(payloads) for notebook in stored.get("notebooks", {}).values()
            for gid, payloads in notebook.get("cells", {}).items()}


def _key(value: object) -> str | None:
    """A digest of an encoded value, or None for one that says nothing (not plain data, malformed)."""
    if not isinstance(value, dict) or value.get("t") == "unsupported":
        return None
    try:
        return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()
    except (TypeError, ValueError, RecursionError):
        return None


def wrong_values(reference: dict[str, list[Published]], published: object) -> tuple[set, dict[tuple, WrongValue]]:
    """The expectations one record published a value for, and those whose value is wrong.

    Expectations are named (test, label, occurrence), matched as :func:`judge` matches them.
    """
    judged, wrong = set(), {}
    if not isinstance(published, dict):
        return judged, wrong
    for test, payloads in published.items():
        expected = reference.get(test)
        if not expected or not isinstance(payloads, list):
            continue
        by_label: dict[str, list[Published]] = defaultdict(list)
        for p in expected:
            by_label[p["label"]].append(p)
        seen: Counter[str] = Counter()
        for payload in stored_list(payloads):
            label, k = payload["label"], seen[payload["label"]]
            seen[label] += 1
            if k >= len(by_label[label]):
                continue
            name = (test, label, k)
            judged.add(name)
            if not judge([by_label[label][k]], [payload]).passed and (key := _key(payload["value"])):
                wrong[name + (key,)] = WrongValue(test, label, k, payload["value"])
    return judged, wrong


def shared_wrong_values(course: Course, assignment: str,
                        students: list[str]) -> dict[frozenset, list[WrongValue]]:
    """Pairs of students -> the wrong values both published, each weighed by its rarity."""
    reference = reference_values(course, assignment)
    if not reference:
        return {}
    judged_by: Counter[tuple] = Counter()
    holders: dict[tuple, list[str]] = defaultdict(list)
    found: dict[tuple, WrongValue] = {}
    for student in students:
        try:
            record = status.read(course, assignment, student) or {}
        except (ValueError, OSError):
            continue
        judged, wrong = wrong_values(reference, record.get("published") if isinstance(record, dict) else None)
        judged_by.update(judged)
        for name, value in wrong.items():
            holders[name].append(student)
            found.setdefault(name, value)
    shared: dict[frozenset, list[WrongValue]] = defaultdict(list)
    for name, who in holders.items():
        n, total = len(who), judged_by[name[:3]]
        if n < 2 or total < 3:
            continue
        value = found[name]
        value.students, value.judged, value.weight = n, total, math.log(total / n) / math.log(total)
        for a, b in itertools.combinations(sorted(who), 2):
            shared[frozenset((a, b))].append(value)
    return shared


def evidence(values: list[WrongValue]) -> float:
    """How strongly shared wrong values tie a pair: 1 - prod(1 - weight), in [0, 1]."""
    return 1.0 - math.prod(1.0 - v.weight for v in values)


# ---------------------------------------------------------------- ranking


@dataclass
class Pair:
    a: str
    b: str
    code: float  # code similarity, 0..1
    cells: dict[str, float]  # grade id -> that cell's similarity
    shared: list[WrongValue]
    evidence: float  # 0..1

    @property
    def score(self) -> float:
        """What pairs are ranked by."""
        return self.code + EVIDENCE_WEIGHT * self.evidence


@dataclass
class Ranking:
    assignment: str
    cells: list[str]  # the answer cells' grade ids
    answers: dict[str, Answers]
    prints: dict[str, dict]
    pairs: list[Pair]  # every pair with any similarity, highest score first
    notes: dict[str, str]  # student -> why their answers were not (all) compared


def students(course: Course, assignment: str) -> list[str]:
    """Everyone with a collected submission of ``assignment``."""
    root = course.submissions_root()
    return sorted(p.name for p in root.iterdir() if course.submitted(p.name, assignment).is_dir()) \
        if root.is_dir() else []


def rank(course: Course, assignment: str) -> Ranking:
    """Every pair of submissions of ``assignment`` scored, most alike first."""
    cells, given = release_cells(course, assignment)
    everyone = students(course, assignment)
    answers = {a.student: a for a in (read_answers(course, assignment, s, cells) for s in everyone)}
    prints = fingerprints(list(answers.values()), given)
    shared = shared_wrong_values(course, assignment, everyone)
    pairs = []
    for a, b in itertools.combinations(sorted(answers), 2):
        code, per_cell = code_similarity(prints[a], prints[b])
        values = shared.get(frozenset((a, b)), [])
        if code > 0 or values:
            pairs.append(Pair(a, b, code, per_cell, values, evidence(values)))
    pairs.sort(key=lambda p: (-p.score, p.a, p.b))
    notes = {s: a.note for s, a in answers.items() if a.note}
    return Ranking(assignment, cells, answers, prints, pairs, notes)


# ---------------------------------------------------------------- scores


def scores(course: Course, assignment: str, names: set[str]) -> dict[str, str]:
    """Each student's score as ``"x / y"``: the gradebook's where it has one, else the status record's."""
    out = {}
    for student in names:
        try:
            record = status.read(course, assignment, student) or {}
            got = [v for v in record.get("scores", {}).values() if isinstance(v, list) and len(v) == 2]
            if got:
                out[student] = f"{sum(float(v[0]) for v in got):g} / {sum(float(v[1]) for v in got):g} autograded"
        except (ValueError, OSError, TypeError):
            continue
    out.update(_gradebook_scores(course, assignment, names))
    return out


def _gradebook_scores(course: Course, assignment: str, names: set[str]) -> dict[str, str]:
    url = course.gradebook_url()
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        return {}
    from nbgrader.api import Gradebook, MissingEntry

    out = {}
    try:
        with Gradebook(url) as gb:
            max_score = gb.find_assignment(assignment).max_score
            for student in names:
                try:
                    out[student] = f"{gb.find_submission(assignment, student).score:g} / {max_score:g}"
                except MissingEntry:
                    pass
    except Exception:  # noqa: BLE001 (no gradebook, or not this assignment: the records' scores stand)
        return {}
    return out


# ---------------------------------------------------------------- the report


def shown_value(value: object) -> str:
    """A published value as a short text (escaped later): numbers, the start of an array, a string."""
    from course_utils import checks

    decoded = checks.decode(value)
    if isinstance(decoded, np.ndarray):
        text = f"array {decoded.dtype} {tuple(decoded.shape)}: " + np.array2string(
            decoded.ravel()[:12], precision=5, threshold=12)
    else:
        text = repr(decoded)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + " ..."


def _marked(fp, slices) -> str:  # noqa: ANN001
    """An answer's code as HTML, the spans it shares with the other answer in <mark>."""
    from copydetect.utils import highlight_overlap

    if len(slices) == 0 or len(slices[0]) == 0:
        return html.escape(fp.raw_code)
    text, _ = highlight_overlap(fp.raw_code, slices, "<mark>", "</mark>", escape_html=True)
    return text


def _pair_html(n: int, pair: Pair, ranking: Ranking, shown_scores: dict[str, str]) -> str:
    from copydetect import compare_files

    e = html.escape
    a, b = ranking.prints[pair.a], ranking.prints[pair.b]
    parts = [f'<section id="pair-{n}"><h2>{n}. {e(pair.a)} and {e(pair.b)}</h2>',
             f"<p>rank score {pair.score:.2f}: code {pair.code:.0%}, shared wrong values {len(pair.shared)} "
             f"(evidence {pair.evidence:.2f}). Scores: {e(pair.a)} {e(shown_scores.get(pair.a, 'none'))}; "
             f"{e(pair.b)} {e(shown_scores.get(pair.b, 'none'))}.</p>"]
    for gid in ranking.cells:
        if gid not in a or gid not in b:
            continue
        _, _, (slices_a, slices_b) = compare_files(a[gid], b[gid]) if a[gid].hashes & b[gid].hashes else \
            (0, 0, ([], []))
        parts.append(f"<h3>{e(gid)}: {pair.cells.get(gid, 0.0):.0%} alike</h3><div class=side>"
                     f"<div><h4>{e(pair.a)}</h4><pre>{_marked(a[gid], slices_a)}</pre></div>"
                     f"<div><h4>{e(pair.b)}</h4><pre>{_marked(b[gid], slices_b)}</pre></div></div>")
    if pair.shared:
        rows = "".join(f"<tr><td>{e(v.test)}</td><td>{e(v.label)}</td><td><code>{e(shown_value(v.value))}</code></td>"
                       f"<td>{v.students} of {v.judged}</td></tr>" for v in pair.shared)
        parts.append("<h3>The same wrong values</h3><table><tr><th>test</th><th>expectation</th><th>value both "
                     f"published</th><th>students with it</th></tr>{rows}</table>")
    return "".join(parts) + "</section>"


STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:1400px}
.notice{background:#fff7d6;border:1px solid #e0c060;padding:.6em 1em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
.side{display:grid;grid-template-columns:1fr 1fr;gap:1em}
pre{background:#f6f6f6;padding:.6em;overflow:auto;font-size:12px;white-space:pre-wrap;word-break:break-all}
mark{background:#ffd27a}section{border-top:2px solid #999;margin-top:1.5em}
"""


def page(ranking: Ranking, shown: list[Pair], shown_scores: dict[str, str], threshold: float) -> str:
    """The whole report as one self-contained HTML page: no script, no link out, every student text escaped."""
    e = html.escape
    rows = "".join(
        f'<tr><td><a href="#pair-{n}">{n}</a></td><td>{e(p.a)}</td><td>{e(p.b)}</td><td>{p.score:.2f}</td>'
        f"<td>{p.code:.0%}</td><td>" + ", ".join(f"{e(g)} {p.cells[g]:.0%}" for g in ranking.cells if g in p.cells)
        + f"</td><td>{len(p.shared)}</td></tr>" for n, p in enumerate(shown, 1))
    notes = "".join(f"<li>{e(s)}: {e(why)}</li>" for s, why in sorted(ranking.notes.items()))
    body = [f"<h1>Similar answers: {e(ranking.assignment)}</h1>", f'<p class="notice">{e(EXPLANATION)}</p>',
            f"<p>{len(ranking.answers)} submissions, answer cells {e(', '.join(ranking.cells))}; "
            f"{len(shown)} pairs with a rank score of {threshold:g} or more (code similarity plus "
            f"{EVIDENCE_WEIGHT:g} x the evidence of shared wrong values), most alike first.</p>",
            "<table><tr><th>#</th><th>student</th><th>student</th><th>rank score</th><th>code</th>"
            f"<th>each cell</th><th>same wrong values</th></tr>{rows}</table>"]
    if notes:
        body.append(f"<h2>Not compared</h2><ul>{notes}</ul>")
    body += [_pair_html(n, p, ranking, shown_scores) for n, p in enumerate(shown, 1)]
    return ("<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
            "<meta http-equiv=Content-Security-Policy content=\"default-src 'none'; style-src 'unsafe-inline'\">"
            f"<title>Similar answers: {e(ranking.assignment)}</title><style>{STYLE}</style></head><body>"
            + "\n".join(body) + "</body></html>")


def csv_text(text: str) -> str:
    """A CSV field a spreadsheet will not run as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def write_csv(ranking: Ranking, flagged: list[Pair], shown_scores: dict[str, str], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["rank", "student_a", "student_b", "rank_score", "code_similarity",
                         *[f"cell {g}" for g in ranking.cells], "shared_wrong_values", "evidence",
                         "score_a", "score_b"])
        for n, p in enumerate(flagged, 1):
            writer.writerow([n, csv_text(p.a), csv_text(p.b), f"{p.score:.3f}", f"{p.code:.3f}",
                             *[f"{p.cells[g]:.3f}" if g in p.cells else "" for g in ranking.cells],
                             len(p.shared), f"{p.evidence:.3f}", shown_scores.get(p.a, ""),
                             shown_scores.get(p.b, "")])


def report(course: Course, assignment: str, threshold: float = THRESHOLD, top: int = TOP) -> tuple[Ranking, list[Pair]]:
    """Rank every pair, write the page and the CSV of the pairs from ``threshold`` on; the ranking and those pairs."""
    ranking = rank(course, assignment)
    flagged = [p for p in ranking.pairs if p.score >= threshold]
    shown_scores = scores(course, assignment, {s for p in flagged for s in (p.a, p.b)})
    page_path, table_path = course.similarity_page(assignment), course.similarity_table(assignment)
    page_path.parent.mkdir(parents=True, exist_ok=True)
    page_path.write_text(page(ranking, flagged[:top], shown_scores, threshold), encoding="utf-8")
    write_csv(ranking, flagged, shown_scores, table_path)
    return ranking, flagged


def main(course: Course, assignment: str, threshold: float = THRESHOLD, top: int = TOP) -> int:
    """``course similarity A``: write the report and say where it is; 2 when there is no release to compare with."""
    released = course.release(assignment) / f"{assignment}.ipynb"
    if not released.is_file():
        print(f"course similarity: no {released}: run `course release {assignment}` first (its given code is what "
              "never counts)")
        return 2
    ranking, flagged = report(course, assignment, threshold, top)
    print(f"{len(ranking.answers)} submissions of {assignment} compared; {len(flagged)} pairs with a rank score of "
          f"{threshold:g} or more (the first {min(top, len(flagged))} in full on the page)")
    for student, why in sorted(ranking.notes.items()):
        print(f"  not compared in full: {student}: {why}")
    print(f"wrote {course.similarity_page(assignment)} and {course.similarity_table(assignment)}: "
          "a ranking for a person to read, not a finding")
    return 0
