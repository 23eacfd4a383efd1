"""The training loop, the same for every mixture method, on one process or N (torchrun; DDP
or FSDP, `parallel.py`).

    mixer   = cfg.mixing.build(...)              # static weights, a DoReMi proxy, ...
    for each step:
        lr      = schedule(step)
        plan    = sampler.next(mixer.sampling_weights(step))     # the global batch, on every rank
        result  = train_step(this rank's micro-batches, mixer)   # forward/backward/clip/AdamW
        mixer.observe(result); log a metrics row
        evaluate every eval_every steps; checkpoint every checkpoint_every steps and at the end
    final evaluation, eval.json, the mixer's proposal, final/

Everything with state (model, optimizer, sampler, mixer, RNG, step) is in each checkpoint, so a
rerun after a crash continues exactly where the last checkpoint left off.
"""

from __future__ import annotations

import logging
import sys
import time
from functools import partial
from pathlib import Path

import torch

from mixtune import distributed, schema
from mixtune.data.sampler import DomainSampler, check_layout
from mixtune.data.store import open_dataset
from mixtune.errors import UserError
from mixtune.eval.perplexity import evaluate, format_table
from mixtune.mixing.base import MixerContext
from mixtune.model.build import build_model
from mixtune.model.flops import flops_per_token, peak_flops
from mixtune.model.loss import autocast_dtype_for
from mixtune.model.scales import count_params
from mixtune.records import EvalRow, TrainRow
from mixtune.train import checkpoint, heldout, parallel
from mixtune.train.config import TrainConfig
from mixtune.train.metrics import MetricsLog
from mixtune.train.optim import build_optimizer, lr_at, set_lr
from mixtune.train.run_dir import RunDir
from mixtune.train.step import micro_batches, train_step

log = logging.getLogger(__name__)


def run(cfg: TrainConfig, *, table: bool = True) -> Path:
    """Train (or continue) the run `cfg` describes; return its folder. `table`: print the scores."""
    schema.check(cfg, "train settings")
    dist = distributed.setup(cfg.device)
    ds = open_dataset(cfg.data)
    # The scale's recipe fills what was left open (lr, batch, steps of the token budget ...): the
    # run folder's config.yaml then says exactly what was trained.
    cfg = cfg.resolved(ds.vocab_size, ds.seq_len)
    seq_len = cfg.seq_len or ds.seq_len
    check_layout(cfg.batch_size, dist.world_size, cfg.grad_accum)
    run_dir = RunDir(Path(cfg.out), dist)
    run_dir.check(cfg)
    if run_dir.complete:
        run_dir.say_complete()
        return run_dir.path
    amp = autocast_dtype_for(cfg.precision, dist.device)
    mixer = _mixer(cfg, ds, dist, amp, seq_len)  # checks its inputs (a reference)
    tasks = _downstream(cfg, ds, dist, amp)  # likewise: a task not installed fails here
    run_dir.start(cfg)

    model = build_model(cfg.scale, ds.vocab_size, seq_len, ds.eos_id, cfg.seed).to(dist.device)
    # Decided on rank 0 for all: ranks that measure different memory must not differ.
    mode = distributed.on_main(lambda: parallel.choose(
        cfg.parallelism, count_params(cfg.scale, ds.vocab_size)[0], dist))
    ddp = parallel.parallelize(model, mode, dist)  # before the optimizer: FSDP swaps in shards
    opt = build_optimizer(model, cfg.optim)
    sampler = DomainSampler(ds, mixer.sampling_weights(0), cfg.batch_size, cfg.seed, seq_len=seq_len)
    start, tokens = _restore(run_dir, model, opt, sampler, mixer, mode, cfg.steps)
    run_dir.forget_after(start, cfg.steps)
    k, per_step = len(ds.domains), cfg.batch_size * seq_len
    metrics = MetricsLog(run_dir.path, cfg, ds.domains, start, per_step) if dist.is_main else None
    flops = flops_per_token(cfg.scale, ds.vocab_size, seq_len) * per_step
    peak = partial(peak_flops, dist.device, amp, cfg.log.peak_tflops)  # a CPU's: retaken now and then
    model.train()
    for step in range(start, cfg.steps):
        t0 = time.perf_counter()
        heldout.feed(mixer, step, model, mode, ds, seq_len, cfg, dist, amp)  # if it asks (Aioli)
        lr = set_lr(opt, lr_at(step, cfg.optim, cfg.steps))
        plan = sampler.next(mixer.sampling_weights(step))
        batches = micro_batches(sampler, plan, dist.rank, dist.world_size, cfg.grad_accum, dist.device)
        # Every rank holds the global plan, so global per-domain token counts need no communication.
        counts = torch.as_tensor(plan.domain_counts(k) * seq_len, dtype=torch.float64)
        result = train_step(model, ddp, batches, mixer, counts, opt, amp=amp,
                            world_size=dist.world_size, grad_clip=cfg.optim.grad_clip, z_loss=cfg.optim.z_loss)
        mixer.observe(result.loss_sums, counts.numpy())
        tokens, done, dt = tokens + per_step, step + 1, time.perf_counter() - t0
        if metrics is not None:
            metrics.train(_train_row(done, lr, tokens, dt, flops / dt / (peak() * dist.world_size), result, counts, plan,
                                     mixer, metrics), mixer.history())
        last_step = done == cfg.steps
        if cfg.eval.every and done % cfg.eval.every == 0 and not last_step:
            _evaluate(model, mode, ds, seq_len, cfg, dist, amp, tasks, metrics, done, tokens)
        if last_step or done % cfg.checkpoint.every == 0:
            _save(run_dir, done, tokens, model, opt, sampler, mixer, cfg.checkpoint.keep, mode)

    # The last step's path (also taken by a run resumed from its final checkpoint).
    result, downstream = _evaluate(model, mode, ds, seq_len, cfg, dist, amp, tasks, metrics,
                                   cfg.steps, tokens)
    _finish(run_dir, model, mode, ds, cfg, seq_len, metrics, (result, downstream), mixer.result(), table)
    return run_dir.path


def _mixer(cfg: TrainConfig, ds, dist, amp, seq_len: int):
    """The run's mixer, told the run's training tokens (what a `unimax` mixture is spread over)."""
    budget = cfg.steps * cfg.batch_size * seq_len
    return cfg.mixing.build(MixerContext(ds, dist.device, amp, budget))


def _finish(run_dir: RunDir, model, mode, ds, cfg: TrainConfig, seq_len: int, metrics, scores,
            proposal, table: bool) -> None:
    """eval.json, the mixer's proposal and final/, from the full model (rank 0 writes); `scores`:
    the final (validation, downstream) results."""
    result, downstream = scores
    dist = run_dir.dist
    final = parallel.full_model(model, mode, dist)  # under FSDP every rank sends its shards
    if dist.is_main:
        metrics.close()
        run_dir.finish(final, ds, cfg, seq_len, result, proposal, downstream)
        if table:
            print(format_table(result), file=sys.stderr)
    distributed.barrier()


def _restore(run_dir: RunDir, model, opt, sampler, mixer, mode, steps: int) -> tuple[int, int]:
    """(step, tokens seen) of the newest usable checkpoint, its state loaded; (0, 0) without one.
    Rank 0 checks and chooses: every rank must load the same one."""
    sharded = mode == "fsdp"
    ckpt = distributed.on_main(lambda: _usable(run_dir.path, model, opt, steps, sharded))
    if ckpt is None:
        return 0, 0
    load = checkpoint.load_sharded if sharded else checkpoint.load
    saved = load(ckpt, model, opt)
    sampler.load_state_dict(saved["sampler"])
    mixer.load_state_dict(saved.get("mixer", {}))
    if run_dir.dist.is_main:
        log.info("resuming %s from %s", run_dir.path, ckpt.name)
    return int(saved["step"]), int(saved["tokens"])


def _usable(path: Path, model, opt, steps: int, sharded: bool) -> Path | None:
    """The newest checkpoint that `checkpoint.verify` passes. A damaged one (cut short, edited,
    another run's) is named with what is wrong and set aside as damaged-step-N/ (nothing is
    deleted), and the one before is tried: a crash costs one checkpoint interval more, not the run.
    With none left the run starts over with a warning, unless its last step's checkpoint is among
    the damaged: training had finished, and redoing all of it is the user's call."""
    damaged, found = [], None
    for step in reversed(checkpoint.list_steps(path)):
        ckpt = checkpoint.step_dir(path, step)
        try:
            checkpoint.verify(ckpt, steps, model, opt, sharded=sharded)
        except checkpoint.Damaged as e:
            damaged.append((ckpt, e))
            continue
        found = ckpt
        break
    last = [e for ckpt, e in damaged if ckpt.name == f"step-{steps}"]
    if found is None and last:
        raise UserError(
            f"{path}: the last step's checkpoint is damaged ({last[0]}) and no earlier one is "
            f"usable; training had finished, and starting over would redo all {steps} steps. "
            f"Repair it, or move step-{steps} out of {path / 'checkpoints'} to train again from "
            "step 0."
        )
    for ckpt, e in damaged:
        kept = checkpoint.set_aside(ckpt)
        log.warning("checkpoint %s is damaged, not resumed (kept as %s/): %s", ckpt.name,
                    kept.name, e)
    if found is None and damaged:
        log.warning("%s: no usable checkpoint left; starting over from step 0.", path)
    return found


def _save(run_dir: RunDir, step, tokens, model, opt, sampler, mixer, keep: int, mode) -> None:
    state = {"step": step, "tokens": tokens, "sampler": sampler.state_dict(),
             "mixer": mixer.state_dict()}
    if mode == "fsdp":  # every rank writes its shards
        checkpoint.save_sharded(run_dir.path, step, model, opt, state, keep, run_dir.dist.is_main)
        return
    if run_dir.dist.is_main:
        checkpoint.save(run_dir.path, step, model, opt, state, keep=keep)
    distributed.barrier()


def _train_row(step, lr, tokens, dt, mfu, result, counts, plan, mixer, metrics) -> TrainRow:
    per_step = float(counts.sum())
    return TrainRow(
        step=step, loss=result.objective, mean_loss=float(result.loss_sums.sum() / per_step),
        lr=lr, grad_norm=result.grad_norm, tokens=tokens, step_time_s=dt,
        tokens_per_s=per_step / dt, mfu=mfu,
        domain_loss={d: (float(s / c) if c else None)
                     for d, s, c in zip(metrics.domains, result.loss_sums, counts.tolist(), strict=True)},
        domain_sequences=metrics.named(plan.domain_counts(len(counts))),
        mixer={name: metrics.named(v) for name, v in mixer.metrics().items()},
    )


def _evaluate(model, mode, ds, seq_len, cfg, dist, amp, tasks, metrics, step, tokens):
    """Per-domain validation log-ppl, and the downstream tasks if the run scores some."""
    # Ranks score different shares (of windows, of items): under FSDP with gathered parameters.
    with parallel.gathered(model, mode):
        result = evaluate(
            model,
            ds,
            seq_len=seq_len,
            max_tokens_per_domain=cfg.eval.max_tokens_per_domain,
            batch_size=cfg.eval.batch_size,
            device=dist.device,
            autocast_dtype=amp,
            rank=dist.rank,
            world_size=dist.world_size,
        )
        downstream = tasks(model).to_json() if tasks is not None else None
    if metrics is not None:
        metrics.eval(EvalRow(step, tokens, result, downstream))
    return result, downstream


def _downstream(cfg: TrainConfig, ds, dist, amp):
    if not cfg.eval.tasks:
        return None
    from mixtune.eval.downstream import DuringTraining, Runtime

    rt = Runtime(dist.device, amp, dist.rank, dist.world_size,
                 progress_every=cfg.log.progress_every)
    return DuringTraining(cfg.eval.tasks, cfg.eval.limit, cfg.eval.shots, ds, rt)
