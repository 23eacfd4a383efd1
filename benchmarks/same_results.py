"""Are two `mixtune run` outputs the same results? For a refactor that must not change them:
the mixtures' weights, every main run's final evaluation, the DoReMi proxies' weight histories,
and report.md's numbers (its text may differ). Prints what differs; exit 1 if anything does.

    python benchmarks/same_results.py OUTPUT_BEFORE OUTPUT_AFTER
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

NUMBER = re.compile(r"-?\d+\.\d+(?:e-?\d+)?")


def compare(a: Path, b: Path) -> list[str]:
    """What differs between the two outputs (empty: the same results)."""
    problems = []
    files = [p.relative_to(a) for p in sorted(a.rglob("*"))
             if p.name in ("eval.json", "weights_history.jsonl") or p.parent.name == "mixtures"]
    for rel in files:
        if not (b / rel).is_file():
            problems.append(f"{rel}: missing in {b}")
        elif (a / rel).read_bytes() != (b / rel).read_bytes():
            problems.append(f"{rel}: differs")
    numbers = [NUMBER.findall((x / "report" / "report.md").read_text()) for x in (a, b)]
    if numbers[0] != numbers[1]:
        problems.append("report/report.md: its numbers differ")
    return problems


def main() -> None:
    a, b = (Path(p) for p in sys.argv[1:3])
    problems = compare(a, b)
    for line in problems:
        print(line)
    n = len([p for p in a.rglob("*") if p.name in ("eval.json", "weights_history.jsonl")
             or p.parent.name == "mixtures"])
    print(f"{n} result files compared, report numbers compared: "
          f"{'the same results' if not problems else 'DIFFERENT'}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
