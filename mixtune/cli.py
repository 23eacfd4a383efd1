"""The `mixtune` command. Subcommands only parse arguments and call the library."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from mixtune.errors import UserError


def _add_train_args(p: argparse.ArgumentParser, proxy: bool) -> None:
    p.add_argument("--data", required=True, help="prepared dataset folder (mixtune prepare)")
    p.add_argument("--out", required=True, help="run folder (created; rerunning continues it)")
    if proxy:
        p.add_argument(
            "--reference", required=True, help="reference run folder (mixtune train) or its final/"
        )
        p.add_argument(
            "--proxy-sampling",
            default="uniform",
            help="how the proxy samples domains (default uniform, as in the paper)",
        )
        p.add_argument(
            "--eta", type=float, default=1.0, help="step size of the weight update (default 1.0)"
        )
        p.add_argument(
            "--smoothing",
            type=float,
            default=1e-3,
            help="uniform mixed into the weights (default 1e-3)",
        )
        p.add_argument(
            "--loss-normalization",
            choices=("domain", "token"),
            default="domain",
            help="domain: Σ α_i·mean loss_i (paper, default); token: the reference code's form",
        )
    else:
        p.add_argument(
            "--weights",
            default="natural",
            help="natural (default), uniform, temperature:T or a JSON weights file",
        )
    p.add_argument(
        "--scale", default="tiny", help="model scale (see `mixtune scales`; default tiny)"
    )
    p.add_argument("--steps", type=int, required=True, help="optimizer steps")
    p.add_argument(
        "--batch-size", type=int, default=32, help="global batch in sequences (default 32)"
    )
    p.add_argument(
        "--seq-len", type=int, default=None, help="tokens per sequence (default: the dataset's)"
    )
    p.add_argument(
        "--grad-accum", type=int, default=1, help="micro-batches per step on each rank (default 1)"
    )
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default 1e-3)")
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument(
        "--eval-every", type=int, default=0, help="validation every N steps (0: at the end only)"
    )
    p.add_argument("--eval-max-tokens-per-domain", type=int, default=65536)
    p.add_argument("--report-to", choices=("none", "tensorboard", "wandb"), default="none")


def _train_config(args, proxy: bool):
    from mixtune.config import TrainConfig

    return TrainConfig(
        data=args.data,
        out=args.out,
        weights=args.proxy_sampling if proxy else args.weights,
        scale=args.scale,
        steps=args.steps,
        batch_size=args.batch_size,
        seq_len=args.seq_len,
        grad_accum=args.grad_accum,
        lr=args.lr,
        weight_decay=args.weight_decay,
        grad_clip=args.grad_clip,
        seed=args.seed,
        precision=args.precision,
        device=args.device,
        checkpoint_every=args.checkpoint_every,
        eval_every=args.eval_every,
        eval_max_tokens_per_domain=args.eval_max_tokens_per_domain or None,
        report_to=args.report_to,
        reference=args.reference if proxy else None,
        eta=args.eta if proxy else 1.0,
        smoothing=args.smoothing if proxy else 1e-3,
        loss_normalization=args.loss_normalization if proxy else "domain",
    )


def cmd_prepare(args) -> int:
    from mixtune import distributed
    from mixtune.data.prepare import PrepareOptions, prepare, summary_rows
    from mixtune.data.store import open_dataset

    # Under torchrun, preparing is rank 0's job (single-machine work); the other ranks wait for it.
    dist = distributed.setup("cpu") if "WORLD_SIZE" in os.environ else None
    if dist is not None and not dist.is_main:
        distributed.barrier()
        return 0
    out = prepare(
        PrepareOptions(
            sources=args.sources,
            out=args.out,
            text_field=args.text_field,
            domain_field=args.domain_field,
            validation_fraction=args.validation_fraction,
            tokenizer=args.tokenizer,
            vocab_size=args.vocab_size,
            seq_len=args.seq_len,
            skip_bad_records=args.skip_bad_records,
            overwrite=args.overwrite,
        )
    )
    m = open_dataset(out).manifest
    print(
        f"{'domain':<24} {'train docs':>10} {'train tokens':>13} {'sequences':>10} {'val docs':>9} {'val tokens':>11}"
    )
    for d, td, tt, ts, vd, vt in summary_rows(m):
        print(f"{d:<24} {td:>10} {tt:>13} {ts:>10} {vd:>9} {vt:>11}")
    if m.get("skipped_total"):
        print(f"skipped records: {m['skipped_total']} (reasons in {out}/manifest.json)")
    print(f"dataset: {out}")
    if dist is not None:
        distributed.barrier()
    return 0


def cmd_train(args) -> int:
    from mixtune.train import run

    out = run(_train_config(args, proxy=False))
    print(f"run: {out}  (model: {out}/final, metrics: {out}/metrics.jsonl)")
    return 0


def cmd_doremi(args) -> int:
    from mixtune.train import run

    out = run(_train_config(args, proxy=True))
    print(f"domain weights: {out}/domain_weights.json  (history: {out}/weights_history.jsonl)")
    return 0


def cmd_eval(args) -> int:
    from mixtune.evaluate import evaluate_run

    evaluate_run(
        args.run,
        data=args.data,
        max_tokens_per_domain=args.max_tokens_per_domain or None,
        batch_size=args.batch_size,
        device=args.device,
    )
    return 0


def cmd_scales(args) -> int:
    from mixtune.model import SCALES, count_params

    print(
        f"{'scale':<7} {'layers':>6} {'d_model':>7} {'heads':>5} {'ffn':>6} {'params':>14} {'non-embedding':>14}  note"
    )
    for name, s in SCALES.items():
        total, body = count_params(name, args.vocab_size)
        print(
            f"{name:<7} {s.layers:>6} {s.d_model:>7} {s.heads:>5} {s.ffn:>6} {total:>14,} {body:>14,}  {s.note}"
        )
    print(f"(params at vocabulary {args.vocab_size}; embeddings are tied)")
    return 0


def cmd_run(args) -> int:
    from mixtune.pipeline import run_pipeline

    out = run_pipeline(args.config, force=args.force)
    # Under our own torchrun relaunch the launcher prints; under a user's torchrun, rank 0 does.
    if os.environ.get("RANK", "0") != "0" or (
        os.environ.get("RANK") and os.environ.get("MIXTUNE_LAUNCHED")
    ):
        return 0
    print(f"report: {out}/report/report.md  (DoReMi weights: {out}/mixtures/doremi.json)")
    return 0


def cmd_report(args) -> int:
    from mixtune.report import write_report

    print(f"report: {write_report(args.output)}")
    return 0


def cmd_demo(args) -> int:
    from mixtune.demo import run_demo

    run_demo(args.out, steps=args.steps, force=args.force)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mixtune",
        description="Find the data mixture to pretrain a language model on (DoReMi).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("prepare", help="raw multi-domain sources -> tokenized dataset folder")
    p.add_argument(
        "sources",
        nargs="+",
        metavar="SOURCE",
        help="folder (SOURCE/<domain>/..., optional train/ validation/) or file",
    )
    p.add_argument("--out", required=True, help="dataset folder to write")
    p.add_argument(
        "--text-field", default="text", help="dotted path of the text in each record (default text)"
    )
    p.add_argument(
        "--domain-field",
        default=None,
        help="dotted path of the domain in each record, e.g. meta.pile_set_name (default: from folders)",
    )
    p.add_argument(
        "--validation-fraction",
        type=float,
        default=0.05,
        help="hash split when SOURCE has no validation/ (default 0.05)",
    )
    p.add_argument(
        "--tokenizer",
        default=None,
        help="HF tokenizer folder or tokenizer.json (default: train a byte-level BPE)",
    )
    p.add_argument(
        "--vocab-size", type=int, default=8192, help="vocabulary of the trained BPE (default 8192)"
    )
    p.add_argument(
        "--seq-len", type=int, default=512, help="tokens per training sequence (default 512)"
    )
    p.add_argument(
        "--skip-bad-records",
        action="store_true",
        help="skip and count malformed records instead of failing",
    )
    p.add_argument("--overwrite", action="store_true", help="redo a complete output")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("train", help="train a model on a fixed mixture (reference or main model)")
    _add_train_args(p, proxy=False)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "doremi", help="train a DoReMi proxy against a reference run -> domain_weights.json"
    )
    _add_train_args(p, proxy=True)
    p.set_defaults(func=cmd_doremi)

    p = sub.add_parser("eval", help="per-domain validation log-perplexity of a run")
    p.add_argument("run", help="run folder (or a final/ model folder)")
    p.add_argument("--data", default=None, help="dataset folder (default: the run's)")
    p.add_argument(
        "--max-tokens-per-domain",
        type=int,
        default=None,
        help="cap on validation tokens per domain (default: all)",
    )
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser(
        "run",
        help="the whole chain from a YAML config: prepare, reference, proxy, main models, report",
    )
    p.add_argument("config", help="YAML file (see examples/)")
    p.add_argument(
        "--force",
        action="append",
        default=[],
        metavar="STAGE",
        help="redo STAGE (e.g. round-1/proxy, proxy, main) and every stage after it; repeatable",
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("report", help="(re)write OUTPUT/report/ from a finished or partial run")
    p.add_argument("output", help="output folder of `mixtune run`")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "demo", help="the whole chain on generated domains with tiny models (minutes on a laptop)"
    )
    p.add_argument("--out", default="mixtune-demo", help="output folder (default ./mixtune-demo)")
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="override the steps of every model (for a quicker look)",
    )
    p.add_argument(
        "--force", action="append", default=[], metavar="STAGE", help="as for `mixtune run`"
    )
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("scales", help="list the named model scales")
    p.add_argument("--vocab-size", type=int, default=8192)
    p.set_defaults(func=cmd_scales)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format="mixtune: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("transformers", "datasets", "torch.distributed"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is ever fetched from the Hub
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights" bars would drown our own logs
    try:
        return args.func(args)
    except UserError as e:
        print(f"mixtune: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "mixtune: interrupted; rerun the same command to continue from the last checkpoint.",
            file=sys.stderr,
        )
        return 130
    finally:
        from mixtune.distributed import teardown

        teardown()
