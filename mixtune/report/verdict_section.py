"""The verdict as the report shows it (first, under the intro) and as summary.json keeps it.

    ## Verdict: which mixture to train on
    one sentence (report/verdict.py), then per mixture: its target, its difference from the
    reference seed by seed, their mean ± std, the 90% interval, and what a method predicted

summary.json gets the same under "verdict" (the numbers, the outcome, the sentence in plain
text), rewritten with the report, so a script needs no Markdown to read the answer.
"""

from __future__ import annotations

import json

from mixtune.io import write_json_atomic
from mixtune.mixing.target import target_text
from mixtune.report.verdict import NO_DATA, Comparison, Verdict, sentence
from mixtune.tables import NONE, fmt, md_table, md_text

WORDS = {"beats": "better, beyond the spread", "worse": "worse, beyond the spread",
         "noise": "within noise", "one": "one seed: no verdict", "none": "no paired seed"}


def plain_sentence(v: Verdict) -> str:
    """The verdict sentence without Markdown (summary.json, the leaderboard page, the terminal)."""
    return sentence(v, target_text=target_text, bold=str, code=str)


def verdict_section(v: Verdict) -> list[str]:
    lines = ["## Verdict: which mixture to train on", "",
             sentence(v, name=md_text, target_text=lambda t: md_text(target_text(t))), ""]
    if v.outcome == NO_DATA and not v.comparisons:
        return lines
    ref = md_text(v.reference)
    lines += [f"The target is the run's (`target:`): the {md_text(target_text(v.target))}; lower is "
              f"better. Each mixture is compared with {ref} seed by seed (its value minus {ref}'s "
              "of the same seed, which shares its initialisation and data order): the mean and "
              "sample standard deviation of those differences, and their 90% interval "
              f"(Student's t). A mixture beats {ref} when the whole interval is below 0.", ""]
    predicted = any(c.predicted is not None for c in v.comparisons)
    header = ["mixture", "target", f"Δ vs {v.reference} per seed", "mean Δ ± std",
              "90% interval", "verdict"] + (["RegMix predicted"] if predicted else [])
    rows = [_row(c, predicted) for c in v.comparisons]
    rows.insert(0, [v.reference, fmt(v.reference_value), "(reference)", NONE, NONE, "(reference)"]
                + ([NONE] if predicted else []))
    lines += md_table(header, rows, "lrlrrl" + ("r" if predicted else ""))
    tested = sum(c.n >= 2 for c in v.comparisons)
    if tested >= 3:
        lines += ["", f"{tested} mixtures are each tested at 90%: were none of them different from "
                  f"{ref}, about {0.1 * tested:.1f} would still clear the interval by chance "
                  "(either way); a win that holds with more seeds is the one to trust."]
    return lines + [""]


def _row(c: Comparison, predicted: bool) -> list[str]:
    per_seed = ", ".join(f"{s}: {d:+.4f}" for s, d in zip(c.seeds, c.diffs, strict=True))
    interval = f"[{c.low:+.4f}, {c.high:+.4f}]" if c.low is not None else NONE
    word = ("beats" if c.beats else "worse" if c.worse else
            "noise" if c.n >= 2 else "one" if c.n == 1 else "none")
    mean = NONE if c.mean is None else (f"{c.mean:+.4f}" if c.std is None
                                         else f"{c.mean:+.4f} ± {c.std:.4f}")
    return [c.mixture, fmt(c.value), per_seed or NONE, mean, interval, WORDS[word]] \
        + ([fmt(c.predicted)] if predicted else [])


def record_verdict(folder) -> None:
    """Keep the verdict in summary.json (only when it changed: the report is rewritten often)."""
    path = folder.path / "summary.json"
    obj = json.loads(path.read_text())
    record = {**folder.verdict.to_json(), "sentence": plain_sentence(folder.verdict)}
    if obj.get("verdict") != record:
        write_json_atomic(path, {**obj, "verdict": record})
