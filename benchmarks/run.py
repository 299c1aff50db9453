"""Run notebooks at their default settings and print their figures against targets.

    python benchmarks/run.py            # every assignment with a targets file
    python benchmarks/run.py vae maml   # some
    python benchmarks/run.py vae --fast # the FAST switch (seconds), for a smoke run

Each ``benchmarks/<assignment>.toml`` lists targets::

    [[target]]
    metric = "test_nelbo"
    max = 100          # or min = ...
    note = "CS236 reference 101.5 +- 0.55"

This prints figures; it is not a timed test and never fails a build. The
machine's load is printed too, since a busy machine inflates the seconds.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tomllib
from pathlib import Path

from course_tools.authoring.runner import run

HERE = Path(__file__).resolve().parent


def check(results: dict, targets: list[dict]) -> list[str]:
    """One line per target: the figure, the bound, and whether it is met."""
    lines = []
    for t in targets:
        value = results.get(t["metric"])
        bound = f"<= {t['max']}" if "max" in t else f">= {t['min']}"
        if value is None:
            verdict = "MISSING"
        elif ("max" in t and value > t["max"]) or ("min" in t and value < t["min"]):
            verdict = "MISSED"
        else:
            verdict = "met"
        shown = f"{value:.4g}" if isinstance(value, (int, float)) else str(value)
        lines.append(f"  {t['metric']:<28}{shown:>12}   target {bound:<12} {verdict}  {t.get('note', '')}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("assignments", nargs="*")
    parser.add_argument("--fast", action="store_true")
    args = parser.parse_args()
    names = args.assignments or sorted(p.stem for p in HERE.glob("*.toml"))
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")
    seconds: dict[str, float] = {}
    for name in names:
        spec = HERE / f"{name}.toml"
        targets = tomllib.loads(spec.read_text()).get("target", []) if spec.is_file() else []
        start = time.perf_counter()
        results = run(name, fast=args.fast, results=HERE / f"{name}.results.json")
        wall = seconds[name] = time.perf_counter() - start
        print(f"{name} ({'FAST' if args.fast else 'default settings'}): whole notebook {wall:.0f} s "
              f"(load {os.getloadavg()[0]:.2f})")
        for line in check(results, targets) if not args.fast else []:
            print(line)
        others = {k: v for k, v in results.items() if k not in {t['metric'] for t in targets}}
        for key, value in sorted(others.items()):
            shown = f"{value:.4g}" if isinstance(value, float) else str(value)  # dicts and lists as text
            print(f"  {key:<28}{shown:>12}")
    print(shares(seconds, budget=COURSE_BUDGET_S if not args.fast else None))
    return 0


COURSE_BUDGET_S = 45 * 60  # the whole course at its defaults, on two idle cores


def shares(seconds: dict[str, float], budget: float | None = None) -> str:
    """The whole run's total and each notebook's share of it, largest first, so the cost of the
    next assignment is visible when it lands (and, at defaults, the total against the budget)."""
    total = sum(seconds.values())
    lines = [f"total {total / 60:.1f} min for {len(seconds)} notebooks"
             + (f" (budget {budget / 60:.0f} min: {'met' if total <= budget else 'MISSED'})" if budget else "")]
    for name, s in sorted(seconds.items(), key=lambda kv: -kv[1]):
        lines.append(f"  {name:<24}{s:>8.0f} s  {100 * s / total if total else 0:5.1f}%")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
