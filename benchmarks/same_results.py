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


def results(root: Path) -> set[Path]:
    """The result files of an output, relative to it."""
    return {p.relative_to(root) for p in root.rglob("*")
            if p.name in ("eval.json", "weights_history.jsonl") or p.parent.name == "mixtures"}


def compare(a: Path, b: Path) -> tuple[int, list[str]]:
    """(files compared, what differs: empty when the results are the same)."""
    files_a, files_b = results(a), results(b)
    problems = [f"{rel}: only in {a if rel in files_a else b}"
                for rel in sorted(files_a ^ files_b)]
    problems += [f"{rel}: differs" for rel in sorted(files_a & files_b)
                 if (a / rel).read_bytes() != (b / rel).read_bytes()]
    numbers = [NUMBER.findall((x / "report" / "report.md").read_text()) for x in (a, b)]
    if numbers[0] != numbers[1]:
        problems.append("report/report.md: its numbers differ")
    return len(files_a | files_b), problems


def main() -> None:
    a, b = (Path(p) for p in sys.argv[1:3])
    n, problems = compare(a, b)
    for line in problems:
        print(line)
    print(f"{n} result files compared, report numbers compared: "
          f"{'the same results' if not problems else 'DIFFERENT'}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
