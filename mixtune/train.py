"""The training loop: a model on a fixed mixture, or a DoReMi proxy against a frozen reference.

One loop serves both, on one process or N (torchrun, DDP). Per optimizer step:

    plan  = sampler.next()                 # the global batch: same on every rank
    each rank takes its micro-batches      # slot_range(): independent of the layout
    [proxy] score the batch, all-reduce the per-domain excess, update α  (mixing/doremi.py)
    forward/backward per micro-batch, loss scaled so the gradient is that of the global batch
    clip, AdamW step, log a metrics row, checkpoint every N steps

Losses are sums over the global batch divided by global counts, times world_size because DDP
averages gradients over ranks: the gradient is then exactly the one-process, one-batch gradient.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from mixtune import checkpoint, distributed
from mixtune.config import TrainConfig, from_dict, to_yaml
from mixtune.data.sampler import DomainSampler, check_layout, slot_range
from mixtune.data.store import (
    Dataset,
    open_dataset,
    staged_dir,
    write_json_atomic,
)
from mixtune.data.tokenizer import copy_tokenizer_files, load_tokenizer
from mixtune.errors import UserError
from mixtune.evaluate import evaluate, format_table
from mixtune.mixing import doremi
from mixtune.mixing.static import as_dict, resolve_weights
from mixtune.model import build_model, final_dir, load_model, same_tokenizer

log = logging.getLogger(__name__)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """The paper's schedule: linear warm-up over 6% of steps, then exponential decay to lr/10."""
    warmup = math.ceil(cfg.warmup_fraction * cfg.steps)
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    span = max(cfg.steps - warmup - 1, 1)
    return cfg.lr * cfg.final_lr_ratio ** (min(step - warmup, span) / span)


def token_losses(model, x: torch.Tensor, autocast_dtype) -> torch.Tensor:
    """[b, T] cross-entropy of every target token of `x` ([b, T+1] windows)."""
    with torch.autocast(x.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        logits = model(input_ids=x[:, :-1], use_cache=False).logits
    y = x[:, 1:]
    return F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), reduction="none").view_as(y)


def per_domain_sum(values: torch.Tensor, domain_ids: torch.Tensor, k: int) -> torch.Tensor:
    """Sum [b, T] values into [k] by the domain of each row (float64 so sums do not drift)."""
    return torch.zeros(k, dtype=torch.float64, device=values.device).index_add_(
        0, domain_ids, values.sum(dim=1).double()
    )


def autocast_dtype_for(precision: str, device: torch.device):
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None  # bf16 autocast on CPU is usually slower than fp32 matmuls


def run(cfg: TrainConfig) -> Path:
    """Train (or continue) the run described by `cfg`; return its folder."""
    cfg.validate()
    dist = distributed.setup(cfg.device)
    out = Path(cfg.out)
    ds = open_dataset(cfg.data)
    seq_len = cfg.seq_len or ds.seq_len
    weights = resolve_weights(cfg.weights, ds.domains, ds.counts("train"))
    check_layout(cfg.batch_size, dist.world_size, cfg.grad_accum)

    _check_or_write_config(cfg, out, dist)
    if (out / "final").is_dir():
        if dist.is_main:
            log.info("%s is already complete (final/ present); nothing to do.", out)
        return out
    reference = _load_reference(cfg, ds, dist.device) if cfg.is_proxy else None

    model = build_model(cfg.scale, ds.vocab_size, seq_len, ds.eos_id, cfg.seed).to(dist.device)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]  # norms: decaying them only hurts
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=cfg.lr,
        betas=(cfg.beta1, cfg.beta2),
    )
    sampler = DomainSampler(ds, weights, cfg.batch_size, cfg.seed, seq_len=seq_len)
    k = len(ds.domains)
    state = doremi.DoReMiState.uniform(k) if cfg.is_proxy else None
    start, tokens_seen = 0, 0

    if dist.is_main:
        checkpoint.clean_partial(out)
    distributed.barrier()
    ckpt = checkpoint.latest(out)
    if ckpt is not None:
        saved = checkpoint.load(ckpt, model, opt)
        sampler.load_state_dict(saved["sampler"])
        start, tokens_seen = int(saved["step"]), int(saved["tokens"])
        if state is not None:
            state = doremi.DoReMiState.from_state_dict(saved["doremi"])
        if dist.is_main:
            log.info("resuming %s from %s", out, ckpt.name)
    if dist.is_main:
        # Rows written after the checkpoint belong to steps that will be recomputed.
        # The final evaluation (step == steps) is redone when a run resumes at its last step.
        _truncate_jsonl(
            out / "metrics.jsonl", start, drop_eval_at=cfg.steps if start == cfg.steps else None
        )
        _truncate_jsonl(out / "weights_history.jsonl", start)

    ddp = DistributedDataParallel(model) if dist.world_size > 1 else model
    amp = autocast_dtype_for(cfg.precision, dist.device)
    sampling = torch.as_tensor(weights)
    reporter = _Reporter(cfg, out) if dist.is_main else None
    bar = _progress(cfg.steps, start) if dist.is_main else None
    metrics = open(out / "metrics.jsonl", "a") if dist.is_main else None
    history = open(out / "weights_history.jsonl", "a") if dist.is_main and cfg.is_proxy else None

    model.train()
    for step in range(start, cfg.steps):
        t0 = time.perf_counter()
        lr = lr_at(step, cfg)
        for group in opt.param_groups:
            group["lr"] = lr
        plan = sampler.next()
        slots = [
            slot_range(cfg.batch_size, dist.world_size, dist.rank, cfg.grad_accum, m)
            for m in range(cfg.grad_accum)
        ]
        xs = [torch.from_numpy(sampler.tokens(plan, s)).to(dist.device) for s in slots]
        doms = [torch.from_numpy(plan.domain_ids[s]).to(dist.device) for s in slots]
        # Every rank holds the global plan, so global per-domain token counts need no communication.
        counts = torch.as_tensor(plan.domain_counts(k) * seq_len, dtype=torch.float64)

        stats = torch.zeros(2, k, dtype=torch.float64, device=dist.device)  # [loss sum, excess sum]
        kept = None
        if reference is not None:
            # DoReMi: α_t must be known before any backward pass, and it depends on the whole
            # global batch. With one micro-batch the training forward doubles as the scoring
            # forward; with accumulation the proxy scores every micro-batch without gradients first
            # (one extra forward, ~1/3 of a step), instead of holding k activation graphs in memory.
            for x, dom in zip(xs, doms, strict=True):
                with nullcontext() if cfg.grad_accum == 1 else torch.no_grad():
                    proxy = token_losses(ddp if cfg.grad_accum == 1 else model, x, amp)
                with torch.no_grad():
                    ref = token_losses(reference, x, amp)
                stats[1] += per_domain_sum((proxy.detach() - ref).clamp_min(0), dom, k)
                if cfg.grad_accum == 1:
                    kept = proxy
            distributed.all_reduce_sum(stats[1:])
            alpha = state.update(stats[1].cpu().numpy(), counts.numpy(), cfg.eta, cfg.smoothing)
            factor = doremi.proxy_loss_weights(
                torch.as_tensor(alpha), counts, sampling, cfg.loss_normalization
            )
        else:
            factor = torch.full((k,), 1.0 / (cfg.batch_size * seq_len), dtype=torch.float64)
        factor = factor.to(device=dist.device, dtype=torch.float32)

        objective = torch.zeros((), dtype=torch.float64, device=dist.device)
        for m, (x, dom) in enumerate(zip(xs, doms, strict=True)):
            last = m == cfg.grad_accum - 1
            with ddp.no_sync() if (dist.world_size > 1 and not last) else nullcontext():
                losses = kept if kept is not None else token_losses(ddp, x, amp)
                loss = (losses * factor[dom][:, None]).sum()
                (loss * dist.world_size).backward()
            objective += loss.detach().double()
            stats[0] += per_domain_sum(losses.detach(), dom, k)
        kept = None
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)

        # One collective for the logged numbers; .item()/.tolist() are sync points on a GPU, paid
        # once per step.
        logged = torch.cat([stats[0], objective.view(1)])
        distributed.all_reduce_sum(logged)
        tokens_seen += cfg.batch_size * seq_len
        dt = time.perf_counter() - t0
        if dist.is_main:
            domain_loss = logged[:k].cpu().numpy() / np.maximum(counts.numpy(), 1)
            row = {
                "kind": "train",
                "step": step + 1,
                "loss": float(logged[k]),
                "mean_loss": float(logged[:k].sum() / (cfg.batch_size * seq_len)),
                "lr": lr,
                "grad_norm": float(grad_norm),
                "tokens": tokens_seen,
                "step_time_s": dt,
                "tokens_per_s": cfg.batch_size * seq_len / dt,
                "domain_loss": {
                    d: (float(v) if c else None)
                    for d, v, c in zip(ds.domains, domain_loss, counts.tolist(), strict=True)
                },
                "domain_sequences": dict(
                    zip(ds.domains, plan.domain_counts(k).tolist(), strict=True)
                ),
            }
            if state is not None:
                row["domain_excess"] = as_dict(state.last_excess, ds.domains)
                row["domain_weights"] = as_dict(state.alpha, ds.domains)
                history.write(
                    json.dumps({"step": step + 1, "weights": as_dict(state.alpha, ds.domains)})
                    + "\n"
                )
                history.flush()
            metrics.write(json.dumps(row) + "\n")
            metrics.flush()
            reporter.log(row)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{row['loss']:.3f}", tok_s=f"{row['tokens_per_s']:.0f}")

        done = step + 1
        if cfg.eval_every and done % cfg.eval_every == 0 and done < cfg.steps:
            result = _evaluate(model, ds, seq_len, cfg, dist, amp)
            if dist.is_main:
                metrics.write(
                    json.dumps({"kind": "eval", "step": done, **result, "tokens": tokens_seen})
                    + "\n"
                )
                metrics.flush()
                reporter.log({"kind": "eval", "step": done, **result})
        if done % cfg.checkpoint_every == 0 or done == cfg.steps:
            if dist.is_main:
                ckpt_state = {"step": done, "tokens": tokens_seen, "sampler": sampler.state_dict()}
                if state is not None:
                    ckpt_state["doremi"] = state.state_dict()
                checkpoint.save(out, done, model, opt, ckpt_state, keep=cfg.keep_checkpoints)
            distributed.barrier()

    if bar is not None:
        bar.close()
    result = _evaluate(model, ds, seq_len, cfg, dist, amp)
    if dist.is_main:
        metrics.write(
            json.dumps({"kind": "eval", "step": cfg.steps, **result, "tokens": tokens_seen}) + "\n"
        )
        metrics.close()
        if history is not None:
            history.close()
        reporter.log({"kind": "eval", "step": cfg.steps, **result})
        reporter.close()
        write_json_atomic(out / "eval.json", {"step": cfg.steps, "split": "validation", **result})
        if state is not None:
            avg = as_dict(state.average, ds.domains)
            write_json_atomic(
                out / "domain_weights.json",
                {"train_domain_weights": avg, "eval_domain_weights": avg},
            )
        _save_final(model, ds, cfg, out, seq_len)
        print(format_table(result), file=sys.stderr)
    distributed.barrier()
    return out


def _evaluate(model, ds, seq_len, cfg, dist, amp) -> dict:
    return evaluate(
        model,
        ds,
        seq_len=seq_len,
        max_tokens_per_domain=cfg.eval_max_tokens_per_domain,
        batch_size=cfg.eval_batch_size,
        device=dist.device,
        autocast_dtype=amp,
        rank=dist.rank,
        world_size=dist.world_size,
    )


def _check_or_write_config(cfg: TrainConfig, out: Path, dist) -> None:
    """Refuse to continue a run folder that holds a run with other settings."""
    saved = out / "config.yaml"
    if saved.is_file():
        import yaml

        try:
            old = from_dict(TrainConfig, yaml.safe_load(saved.read_text()) or {}, str(saved))
        except (TypeError, yaml.YAMLError) as e:
            raise UserError(
                f"{saved}: unreadable ({e}); use another --out or delete {out}."
            ) from None
        diff = {
            k: (v, cfg.identity().get(k))
            for k, v in old.identity().items()
            if cfg.identity().get(k) != v
        }
        if diff:
            what = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items())
            raise UserError(
                f"{out} holds a run with other settings ({what}). Use another --out, or delete {out} to start over."
            )
    if dist.is_main:
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / ".config.yaml.tmp"
        tmp.write_text(to_yaml(cfg))
        tmp.replace(saved)
    distributed.barrier()


def _load_reference(cfg: TrainConfig, ds: Dataset, device: torch.device):
    ref = Path(cfg.reference)
    final = final_dir(ref)
    if final is None:
        raise UserError(
            f"--reference {ref}: no trained model there (expected {ref}/final/config.json). Train the "
            f"reference first: mixtune train --data {cfg.data} --weights natural --out {ref} ..."
        )
    if not same_tokenizer(final, ds):
        raise UserError(
            f"--reference {ref}: its tokenizer differs from the dataset's ({cfg.data}/tokenizer); the "
            "per-token losses would not be comparable. Train the reference on this dataset."
        )
    model = load_model(final).to(device)
    model.eval().requires_grad_(False)
    return model


def _save_final(model, ds: Dataset, cfg: TrainConfig, out: Path, seq_len: int) -> None:
    """`final/`: an HF model folder with the dataset's tokenizer, published atomically."""
    with staged_dir(out / "final") as staged:
        model.save_pretrained(str(staged), safe_serialization=True)
        copy_tokenizer_files(ds.tokenizer_dir, staged)
        load_tokenizer(staged)  # fail now, not in a later stage, if the copy is unusable
        write_json_atomic(
            staged / "mixtune.json",
            {
                "scale": cfg.scale,
                "steps": cfg.steps,
                "seq_len": seq_len,
                "domains": ds.domains,
                "weights": cfg.weights,
                "tokenizer_sha256": ds.tokenizer_hash,
                "dataset": str(Path(cfg.data).resolve()),
            },
        )


def _truncate_jsonl(path: Path, last_step: int, drop_eval_at: int | None = None) -> None:
    if not path.is_file():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
            if row["step"] <= last_step and not (
                row.get("kind") == "eval" and row["step"] == drop_eval_at
            ):
                keep.append(line)
        except (json.JSONDecodeError, KeyError):
            continue  # a line cut short by a crash
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(line + "\n" for line in keep))
    tmp.replace(path)


def _progress(total: int, initial: int):
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc="train", unit="step")


class _Reporter:
    """Optional TensorBoard / W&B mirror of metrics.jsonl (which stays the source of truth)."""

    def __init__(self, cfg: TrainConfig, out: Path):
        self.kind, self.impl = cfg.report_to, None
        try:
            if self.kind == "tensorboard":
                from torch.utils.tensorboard import SummaryWriter

                self.impl = SummaryWriter(str(out / "tensorboard"))
            elif self.kind == "wandb":
                import wandb

                self.impl = wandb.init(
                    project="mixtune",
                    name=out.name,
                    dir=str(out),
                    config=cfg.__dict__,
                    resume="allow",
                )
        except ImportError:
            raise UserError(
                f"--report-to {self.kind}: the package is not installed (pip install 'mixtune[{self.kind}]')."
            ) from None

    def log(self, row: dict) -> None:
        if self.impl is None:
            return
        flat = {}
        for key, value in row.items():
            if isinstance(value, dict):
                flat.update(
                    {
                        f"{row['kind']}/{key}/{d}": v
                        for d, v in value.items()
                        if isinstance(v, (int, float))
                    }
                )
            elif isinstance(value, (int, float)) and key != "step":
                flat[f"{row['kind']}/{key}"] = value
        if self.kind == "tensorboard":
            for key, value in flat.items():
                self.impl.add_scalar(key, value, row["step"])
        else:
            self.impl.log(flat, step=row["step"])

    def close(self) -> None:
        if self.impl is not None:
            (self.impl.close if self.kind == "tensorboard" else self.impl.finish)()
