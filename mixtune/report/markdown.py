"""OUTPUT/report/report.md: which mixture won, by how much, and the plots behind it.

    headline       mixtures ranked by mean uniform-average validation log-ppl over seeds
    weights        every mixture's domain weights                       weights.png
    methods        each mixture method's own section (DoReMi: α_t per round, trajectory.png;
                   an online method: its main runs' mixture, <method>_trajectory.png)
    training loss  seed-mean training loss per mixture                   train_loss.png
    validation     per-domain log-ppl, average over eval steps            eval_avg.png, per_domain.png

A section whose data does not exist yet (no finished run, no DoReMi round) says so instead of
showing a plot of nothing; runs left out of the numbers are listed with the reason.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mixtune.io import remove, write_bytes_atomic
from mixtune.mixing.target import AVERAGE, is_downstream, target_text
from mixtune.records import RunSummary, finite
from mixtune.report import downstream, online
from mixtune.report.collect import LOSS_FLOOR, OutputFolder, mixture_weights
from mixtune.report.data_notes import data_notes
from mixtune.report.plots import draw_plots
from mixtune.report.tables import fmt_speedup, label
from mixtune.report.verdict_section import record_verdict as _record_verdict
from mixtune.report.verdict_section import verdict_section
from mixtune.tables import NONE, Md, fmt, fmt_ms, md_code, md_table, md_text

REPORT_DIR = "report"


def write_report(output_dir: str | os.PathLike) -> Path:
    """Write OUTPUT/report/report.md and its PNGs from a `mixtune run` output folder (of a run
    still preparing its data or training a method's stages: what the stages have done so far)."""
    if not (Path(output_dir) / "summary.json").is_file():
        from mixtune.report.progress import write_progress

        return write_progress(Path(output_dir), Path(output_dir) / REPORT_DIR)
    folder = OutputFolder.read(output_dir)
    summary, table = folder.summary, folder.table
    out = folder.path / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    drawn = draw_plots(out, folder)
    names = [r["mixture"] for r in table]
    lines = _intro(summary, folder.path, table)
    lines += verdict_section(folder.verdict)
    lines += _data_section(summary)
    _record_verdict(folder)
    lines += _processing_section(folder.path, out)
    lines += _headline(summary, table)
    lines += _weights_section(summary, names, "weights.png" in drawn.files)
    lines += _method_sections(summary, folder.path, out)
    lines += online.sections(summary, folder.runs, out)
    lines += _train_section(drawn.train_window)
    lines += _validation_section(summary, table, "per_domain.png" in drawn.files)
    lines += downstream.section(folder.runs, names, downstream.PLOT in drawn.files)
    lines += _leaderboard_section(folder.path, out, summary.target)
    lines.append(HOW_TO_READ)
    path = out / "report.md"
    write_bytes_atomic(path, "\n".join(lines).encode())
    return path


def _data_section(summary: RunSummary) -> list[str]:
    """What the numbers rest on: small or duplicated validation sets, and mixtures that repeat a
    domain of few documents (from the dataset's manifest; nothing when all is well)."""
    import json

    path = Path(summary.dataset) / "manifest.json"
    try:  # a dataset moved or damaged since the run: the report goes on without the notes
        manifest = json.loads(path.read_text()) if path.is_file() else None
    except (ValueError, OSError):
        manifest = None
    if not isinstance(manifest, dict):
        return []
    mixtures = {n: mixture_weights(summary, n) for n in summary.mixtures}
    notes = data_notes(manifest, {n: w for n, w in mixtures.items() if w}, summary.main_tokens,
                       summary.max_epochs)
    if not notes:
        return []
    return ["### What the numbers rest on", "",
            "Cautions about the data (from the dataset's `manifest.json`): weigh the per-domain "
            "and worst-case numbers below with them.", "",
            *(f"- {md_text(n)}" for n in notes), ""]


def _processing_section(output: Path, report_dir: Path) -> list[str]:
    """What `mixtune process` kept and dropped (a run with a data.process section)."""
    corpus = output / "process" / "corpus"
    if not (corpus / "process_stats.json").is_file():
        return []
    import shutil

    from mixtune.process import stats

    merged = stats.read(corpus)
    rows = stats.rows(merged)
    shutil.copyfile(corpus / "process_stats.png", report_dir / "process_stats.png")
    return ["## Processing", "",
            f"The raw sources went through `mixtune process` into {md_code(corpus)}; per step, the "
            "documents in and out and the commonest reasons for dropping one (per domain in "
            "`process_stats.json` there).", "",
            *md_table(list(rows[0]), [[str(v) for v in r.values()] for r in rows],
                      "l" + "r" * (len(rows[0]) - 2) + "l"),
            "", "![documents dropped per step](process_stats.png)", ""]


def _leaderboard_section(output: Path, report_dir: Path, target) -> list[str]:
    from mixtune.leaderboard.write import write_leaderboard

    # Ranked as the headline is, by the run's target where the board has it as a measure.
    rank_by = "mean_bpb" if is_downstream(target) else "avg_log_ppl"
    table, notes = write_leaderboard(output, report_dir, rank_by=rank_by)
    return ["## Leaderboard", "",
            "The main models as `mixtune leaderboard` lists them, ranked as the headline (by "
            f"{'mean downstream bits per byte' if is_downstream(target) else 'average validation log-ppl'}"
            "), each row joined to its model and dataset records; `leaderboard.html` beside this "
            "file is the sortable page.", "", table,
            *(f"- note: {md_text(n)}" for n in notes), ""]


def _intro(summary: RunSummary, output_dir: Path, table: list[dict]) -> list[str]:
    domains = summary.domains
    seeds = max((r["seeds_expected"] for r in table), default=0)
    return [
        "# mixtune report",
        "",
        f"Output folder {md_code(output_dir)}; dataset {md_code(summary.dataset)}; "
        f"{len(domains)} domains ({', '.join(map(md_text, domains))}); {len(table)} mixtures; "
        f"{_methods_text(summary)}up to {seeds} seed(s) per mixture. "
        f"Every mixture is compared with the reference mixture "
        f"**{md_text(summary.reference_mixture)}**.",
        "",
    ]


def _methods_text(summary: RunSummary) -> str:
    if not summary.methods:
        return "every mixture fixed in advance; "
    return "mixture methods " + ", ".join(
        f"{md_text(n)} ({'online, in the main runs' if r.get('online') else 'offline'})"
        for n, r in summary.methods.items()) + "; "


def _method_sections(summary: RunSummary, output: Path, report_dir: Path) -> list[str]:
    """Each offline method's own section, from its record in summary.json."""
    from mixtune.mixing import METHODS

    lines = []
    for name in METHODS.names():  # a figure of a method this run no longer has would be stale
        if name not in summary.methods:
            for figure in METHODS.get(name).figures:
                remove(report_dir / figure)
    for name, record in summary.methods.items():
        method = METHODS.get(name)
        if method is not None:
            lines += method.report_section(record, output, report_dir)
        elif not record.get("online"):
            lines += [f"## {md_text(name)}", "", f"The method {md_text(repr(name))} is not "
                      "registered in this process "
                      "(import the module that defines it), so its section is left out.", ""]
    return lines


# -- headline --------------------------------------------------------------------------------------


def _headline(summary: RunSummary, table: list[dict]) -> list[str]:
    ref = md_text(summary.reference_mixture)  # in prose; a table's header cells escape it
    k = len(summary.domains)
    ranked_by = (f"their validation log-perplexity averaged uniformly over the {k} domains "
                 "(DoReMi's headline number)" if summary.target == AVERAGE else
                 f"the run's target, the {md_text(target_text(summary.target))} (its own column)")
    lines = [
        "## Headline: the mixtures ranked",
        "",
        f"Mixtures ranked by {ranked_by}; lower is better. Numbers are the mean ± sample "
        "standard deviation over seeds (just the mean when one seed finished). *Worst-case* is "
        "the highest per-domain log-ppl, named with the domain most seeds agree on. *Improved* "
        f"counts the domains where the mixture beats {ref}. *Speed-up* is how many times fewer "
        f"steps the mixture needed to reach {ref}'s final average.",
        "",
    ]
    base = next((r["excess_baseline"] for r in table if r.get("excess_baseline")), None)
    if base:
        lines += [
            f"*Worst-case excess* is what DoReMi minimises: the largest per-domain log-ppl above "
            f"{md_text(base)}{'' if base == LOSS_FLOOR else ' of the same seed'} (the average excess "
            "beside it); a mixture can win here and lose on the average.",
            "",
        ]
    header = [
        "rank",
        "mixture",
        "seeds",
        "average log-ppl",
        "worst-case log-ppl",
        "worst domain",
        f"domains improved vs {summary.reference_mixture}",
        f"speed-up to {summary.reference_mixture}'s final average",
    ]
    align = "rlrrrlrr"
    if summary.target != AVERAGE:
        header.insert(3, f"target: {target_text(summary.target)}")
        align = align[:3] + "r" + align[3:]
    if base:
        header += ["worst-case excess", "average excess"]
        align += "rr"
    cells = [_headline_cells(r, bool(base)) for r in table]
    if summary.target != AVERAGE:
        cells = [c[:3] + [fmt_ms(r.get("objective"), r.get("objective_std"))] + c[3:]
                 for c, r in zip(cells, table, strict=True)]
    lines += md_table(header, cells, align)
    lines += ["", "Whether a difference stands out of seed noise: the verdict above, each mixture "
              "paired seed by seed with the reference."]
    lines += _speedup_note(summary.reference_mixture, table)
    lines += _missing(table)
    return lines + [""]


def _headline_cells(r: dict, excess: bool = False) -> list[str]:
    domain = r["worst_domain"] or NONE
    if r["worst_domain"] and r["worst_domain_seeds"] < r["seeds"]:
        domain += f" ({r['worst_domain_seeds']}/{r['seeds']} seeds)"
    if r["is_reference"]:
        improved = "(reference)"
    elif r["domains_improved"] is None:
        improved = NONE
    else:
        improved = f"{r['domains_improved']}/{r['domains_compared']}"
    seeds = str(r["seeds"]) + ("" if r["seeds"] == r["seeds_expected"] else f"/{r['seeds_expected']}")
    return [
        str(r["rank"] or NONE),
        label(r),
        seeds,
        fmt_ms(r["average"], r["average_std"]),
        fmt_ms(r["worst"], r["worst_std"]),
        domain,
        improved,
        fmt_speedup(r),
    ] + (_excess_cells(r) if excess else [])


def _excess_cells(r: dict) -> list[str]:
    if r["is_reference"] and r["excess_baseline"] != LOSS_FLOOR:
        return ["0 (reference)", "0 (reference)"]  # its excess over itself, by definition
    return [fmt_ms(r["worst_excess"], r["worst_excess_std"]) + _where(r["worst_excess_domain"]),
            fmt_ms(r["average_excess"], r["average_excess_std"])]


def _where(domain: str | None) -> str:
    return f" ({domain})" if domain else ""


def _speedup_note(ref: str | None, table: list[dict]) -> list[str]:
    ref = md_text(ref)
    if table and table[0]["reference_step"] is not None:
        return [
            "",
            f"Target for the speed-up: {ref}'s final average {fmt(table[0]['target'])} "
            f"at step {table[0]['reference_step']}; {NONE} means never reached within the run.",
        ]
    return [
        "",
        f"No speed-up: the reference mixture {ref} has no finished main run with "
        "evaluation steps.",
    ]


def _missing(table: list[dict]) -> list[str]:
    missing = [(r["mixture"], m) for r in table for m in r["missing"]]
    missing += [(r["mixture"], None) for r in table if not r["seeds_expected"]]
    if not missing:
        return []
    lines = ["", "Not available (left out of every number above and below):", ""]
    for name, m in missing:
        if m is None:
            lines.append(f"- {md_text(name)}: no main runs listed in summary.json")
        else:
            lines.append(f"- {md_text(name)} {md_text(m['seed'])} ({md_code(m['path'])}): "
                         f"{md_text(m['problem'])}")
    return lines


# -- weights ---------------------------------------------------------------------------------------


def _weights_section(summary: RunSummary, names: list[str], have_plot: bool) -> list[str]:
    lines = [
        "## Domain weights",
        "",
        "The share of training data each mixture draws from each domain (normalised to sum to 1; "
        "columns in ranking order). DoReMi mixtures come from the proxy runs below.",
        "",
    ]
    online = [n for n, r in summary.methods.items() if r.get("online")]
    if online:
        lines += [f"{', '.join(map(md_text, online))} chose the mixture while the main model trained: its "
                  "column is the share of each domain in what its main runs trained on (mean "
                  "over seeds).", ""]
    weights = {n: mixture_weights(summary, n) for n in names}
    rows = [
        [d] + [fmt(weights[n].get(d), 3) if weights[n] else NONE for n in names]
        for d in summary.domains
    ]
    lines += md_table(["domain", *names], rows, "l" + "r" * len(names))
    if have_plot:
        lines += ["", "![Domain weights per mixture](weights.png)"]
    return lines + [""] + _repetition_lines(summary)


def _repetition_lines(summary: RunSummary) -> list[str]:
    """Where a main run repeats a domain, and which proposals the repetition cap changed."""
    cap = summary.max_epochs
    lines = []
    for name, record in summary.capped.items():
        domains = record.get("capped") or {}
        # Two decimals: a cap that bit by a little (4.01 -> 4) must not read "4.0 -> 4.0".
        moved = ", ".join(f"{md_text(d)} {fmt(finite(e.get('epochs_before')), 2)} → "
                          f"{fmt(finite(e.get('epochs_after')), 2)} epochs"
                          for d, e in domains.items() if isinstance(e, dict))
        if record.get("feasible") is False:
            lines.append(f"- **{md_text(name)}**: a main run needs more than {cap:g} epochs of all the data; "
                         "every domain repeated equally (natural weights) instead.")
        else:
            lines.append(f"- **{md_text(name)}** capped at {cap:g} epochs per main run: {moved}; the rest "
                         "went to the other domains in proportion.")
    # A fixed mixture that repeats a domain beyond the cap is not capped: the data notes at the
    # top of the report name it, with the domain and its passes.
    if not lines:
        return []
    return ["Repetition: small proxies never see a domain repeated, so their proposals may ask a "
            "main run to repeat a small domain many times; each method's proposal is capped at "
            "`max_epochs` (about 4 epochs cost little: Muennighoff et al., arXiv 2305.16264).",
            "", *lines, ""]


# -- training and validation -----------------------------------------------------------------------


def _train_section(window: int | None) -> list[str]:
    lines = ["## Training loss", ""]
    if window is None:
        return lines + ["No finished main run has training metrics yet.", ""]
    return lines + [
        f"Training loss of each mixture's main model against step (mean over seeds, moving "
        f"average over {window} step(s)). Each mixture's loss is measured on its own mix of "
        "domains, so these curves show that training went well, not which mixture is better: "
        "compare mixtures on the validation numbers below.",
        "",
        "![Training loss](train_loss.png)",
        "",
    ]


def _validation_section(summary: RunSummary, table: list[dict], plots: bool) -> list[str]:
    floors = summary.loss_floor
    rows = [r for r in table if r["seeds"]]
    lines = ["## Validation log-perplexity", ""]
    if not rows:
        return lines + ["No finished main run yet.", ""]
    lines += [
        "Per-domain validation log-ppl of every mixture's main model, mean ± std over seeds; "
        "the best mixture per domain is in bold."
        + (
            " *floor* is the exact irreducible loss of the generated data: no model can go below it."
            if floors
            else ""
        ),
        "",
    ]
    lines += _validation_table(summary.domains, floors, rows)
    if plots:
        lines += _validation_plots(summary.reference_mixture, floors)
    return lines + [""]


def _validation_table(domains: list[str], floors: dict | None, rows: list[dict]) -> list[str]:
    """Per-domain rows, then the average and worst-case rows; a floor column when floors exist."""
    header = ["domain"] + (["floor"] if floors else []) + [label(r) for r in rows]
    floor_values = [finite((floors or {}).get(d)) for d in domains]
    body = []
    for d, floor in zip(domains, floor_values, strict=True):
        values = [(r["log_ppl"][d], r["log_ppl_std"][d]) for r in rows]
        body.append([d] + ([fmt(floor)] if floors else []) + _best_in_bold(values))
    known = [f for f in floor_values if f is not None]
    full = floors and len(known) == len(domains)
    # Floors of the summary rows: the uniform average of floors, and the largest floor.
    body.append(
        [Md("*average*")]
        + ([fmt(float(np.mean(known)) if full else None)] if floors else [])
        + _best_in_bold([(r["average"], r["average_std"]) for r in rows])
    )
    body.append(
        [Md("*worst-case*")]
        + ([fmt(max(known) if full else None)] if floors else [])
        + _best_in_bold([(r["worst"], r["worst_std"]) for r in rows])
    )
    return md_table(header, body, "l" + "r" * (len(header) - 1))


def _best_in_bold(values: list[tuple[float | None, float | None]]) -> list[str]:
    """(mean, std) cells, the lowest mean (every one that ties it) in bold."""
    present = [m for m, _ in values if m is not None]
    best = min(present) if present else None
    return [
        Md(f"**{fmt_ms(m, s)}**") if m is not None and m == best else fmt_ms(m, s) for m, s in values
    ]


def _validation_plots(ref: str | None, floors: dict | None) -> list[str]:
    ref = md_text(ref)
    return [
        "",
        "Average log-ppl at every evaluation during training (seed mean); the dashed line is "
        f"{ref}'s final average, the target of the speed-up: "
        "the earlier a curve crosses it, the larger the speed-up.",
        "",
        "![Average validation log-ppl during training](eval_avg.png)",
        "",
        "Per-domain log-ppl at the end of training, above "
        + ("the loss floor (what is left to learn)" if floors else
           f"{ref}'s model (below 0: better than the reference mixture)")
        + ": the differences between mixtures show whatever the level of each domain.",
        "",
        "![Per-domain validation log-ppl](per_domain.png)",
    ]


HOW_TO_READ = """## How to read this

- **log-ppl** is the mean negative log-likelihood per token on held-out validation text, in
  nats/token (perplexity = e^log-ppl). Lower is better. Each domain is scored on its own
  validation tokens; the *average* weighs every domain equally, whatever its size.
- **± std** is the sample standard deviation over seeds: differences between mixtures smaller
  than it are within seed-to-seed noise.
- **floor** (generated data only) is the entropy of the process that generated the domain: the
  best log-ppl any model could reach. The gap to the floor is what is left to learn.
- **speed-up** = S_ref / s*, where S_ref is the reference mixture's last evaluation step and s*
  the first evaluation step at which the mixture's seed-mean average log-ppl is at or below the
  reference's final average. 2.0× means the same quality in half the steps. It is measured at
  evaluation steps only, so its resolution is the evaluation interval; — means never reached.
"""
