"""`DoReMiTrainer`: a transformers `Trainer` that trains a DoReMi proxy (pip install 'mixtune[hf]').

    args = TrainingArguments(output_dir="runs/proxy", max_steps=200, learning_rate=1e-3,
                             per_device_train_batch_size=16, gradient_accumulation_steps=2)
    trainer = DoReMiTrainer(model=proxy, args=args, reference_model=reference, train_dataset="data")
    trainer.train()                            # or .train(resume_from_checkpoint=True)
    trainer.domain_weights                     # ᾱ; also output_dir/domain_weights.json

Your `TrainingArguments` set the batch layout (global batch = per-device batch × accumulation ×
processes), the optimizer, schedule, precision and loggers; the proxy model is any causal LM on the
dataset's tokenizer. What the Trainer cannot know, this class adds, as `mixtune doremi` does it:

- batches come from `DomainBatches` (the proxy's sampling mixture, uniform by default), each process
  taking its slice of every global batch, so the data does not depend on the layout;
- before any backward pass of a step, every micro-batch is scored against the frozen reference and
  the excess losses are summed over micro-batches and processes: α_t depends on the global batch only;
  the loss is DoReMi's Σ α_i·(mean loss of domain i), already scaled for accumulation and DDP;
- α_t is logged through the Trainer's loggers (`domain_weight/<domain>`) and appended to
  `output_dir/weights_history.jsonl`; ᾱ is written to `output_dir/domain_weights.json` at the end,
  in the reference DoReMi code's layout as `mixtune doremi` writes it (`weights_layout="flat"`:
  `{domain: weight}`);
- every `checkpoint-N/` also holds `doremi_state.json` (the weights' state and the loader's position),
  so `train(resume_from_checkpoint=...)` continues both exactly; the loader is restored in O(1), not
  by replaying batches (`ignore_data_skip` is set for that reason).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from mixtune.data.loader import DomainBatches
from mixtune.data.store import Dataset, open_dataset
from mixtune.data.weights import Layout, as_dict, check_layout, write_weights
from mixtune.io import JsonlAppender, truncate_jsonl, write_json_atomic
from mixtune.mixing.doremi import ETA, SMOOTHING, DoReMi
from mixtune.model.loss import token_losses

STATE_FILE = "doremi_state.json"
TRAINER_STATE = "trainer_state.json"  # transformers' TRAINER_STATE_NAME: the last file it saves
HISTORY_FILE = "weights_history.jsonl"
WEIGHTS_FILE = "domain_weights.json"


class DoReMiTrainer(Trainer):
    def __init__(
        self,
        model: torch.nn.Module,
        args: TrainingArguments,
        *,
        reference_model: torch.nn.Module,
        train_dataset: str | os.PathLike | Dataset | DomainBatches,
        sampling: str = "uniform",
        eta: float = ETA,
        smoothing: float = SMOOTHING,
        loss_normalization: str = "domain",
        weights_layout: Layout = "doremi",
        **kwargs,
    ):
        """`train_dataset`: a prepared dataset (folder or `open_dataset`), sampled with `sampling`
        (a weights spec) and the batch layout of `args`; or a `DomainBatches` built to match it.
        `eta`, `smoothing`, `loss_normalization`: DoReMi's settings (`mixtune doremi --help`).
        `weights_layout`: of `domain_weights.json`, `doremi` or `flat` (`write_weights`).
        Other keyword arguments go to `Trainer` (e.g. `optimizers`, `callbacks`)."""
        check_layout(weights_layout)  # now, not after the training that ends in writing it
        self.weights_layout = weights_layout
        if args.max_steps is None or args.max_steps <= 0:
            raise ValueError(
                "DoReMiTrainer: set TrainingArguments(max_steps=N): domain-weighted batches do not "
                "run out, so the Trainer cannot count epochs."
            )
        if args.n_gpu > 1:
            raise ValueError(
                "DoReMiTrainer: torch.nn.DataParallel (several GPUs in one process) is not supported; "
                "launch one process per GPU with torchrun."
            )
        batches = _batches(train_dataset, sampling, args)
        self.doremi = DoReMi(
            batches.domains, eta=eta, smoothing=smoothing, loss_normalization=loss_normalization,
            sampling=batches.weights_at(0), world_size=args.world_size,
        )
        self.reference = reference_model.eval().requires_grad_(False)
        self._consumed = batches.state_dict()  # where the batches used by finished steps end
        # Our loss is already the global batch's share (see DoReMi.loss): no division by the
        # accumulation steps. The loader's position is restored from doremi_state.json.
        self.loss_is_scaled_for_ga = True
        args.ignore_data_skip = True
        callbacks = [*(kwargs.pop("callbacks", None) or []), _DoReMiFiles(self)]
        super().__init__(model=model, args=args, train_dataset=batches, callbacks=callbacks, **kwargs)
        self.reference.to(self.args.device)

    @property
    def domains(self) -> list[str]:
        return self.doremi.domains

    @property
    def domain_weights(self) -> dict[str, float]:
        """ᾱ so far: the mixture DoReMi proposes."""
        return as_dict(self.doremi.average, self.domains)

    # -- training -----------------------------------------------------------------------------

    def _save_checkpoint(self, model, trial) -> None:
        # The DoReMi state goes in before the Trainer saves the rest and then deletes older
        # checkpoints (save_total_limit): written in `on_save`, after the deletion, a kill in
        # between left no resumable checkpoint with save_total_limit=1. A checkpoint counts as
        # resumable once the Trainer's own state, written last, is there too (`_resumable`).
        if self.args.should_save:
            ckpt = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
            _write_state(ckpt, self)
        super()._save_checkpoint(model, trial)

    def train(self, resume_from_checkpoint: str | bool | None = None, **kwargs):
        out = Path(self.args.output_dir)
        if resume_from_checkpoint:
            ckpt = _resumable(out) if resume_from_checkpoint is True else Path(resume_from_checkpoint)
            if ckpt is None:
                raise ValueError(f"no checkpoint with {STATE_FILE} in {out} to resume from")
            state_file = ckpt / STATE_FILE
            if not state_file.is_file():
                raise ValueError(
                    f"{ckpt}: no {STATE_FILE}; it was not written by DoReMiTrainer (or its save was "
                    "cut off): resume from an earlier checkpoint."
                )
            saved = json.loads(state_file.read_text())
            self.doremi.load_state_dict(saved["doremi"])
            self.train_dataset.load_state_dict(saved["batches"])
            self._consumed = saved["batches"]
            step = int(saved["step"])
            if self.args.should_save:
                truncate_jsonl(out / HISTORY_FILE, lambda row: row["step"] <= step)
            resume_from_checkpoint = str(ckpt)
        elif self.args.should_save:
            (out / HISTORY_FILE).unlink(missing_ok=True)
        return super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)

    def get_train_dataloader(self) -> torch.utils.data.DataLoader:
        # The batches are already this process's micro-batches: no collation, no sharding by
        # accelerate (which would split them again across processes).
        workers = self.args.dataloader_num_workers
        return torch.utils.data.DataLoader(
            self.train_dataset, batch_size=None, num_workers=workers,
            pin_memory=self.args.dataloader_pin_memory,
            prefetch_factor=self.args.dataloader_prefetch_factor if workers else None,
        )

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        batch_samples = []
        for _ in range(num_batches):
            try:
                batch_samples.append(next(epoch_iterator))
            except StopIteration:
                break
        if len(batch_samples) > 1:
            # α_t needs the whole global batch before the first backward: score every micro-batch
            # without gradients first (one extra forward; with a single micro-batch the training
            # forward doubles as the scoring one, in compute_loss).
            with torch.no_grad():
                for mb in batch_samples:
                    x = mb["input_ids"].to(device)
                    self._add(token_losses(self.model_wrapped, x), x, mb["domain_ids"].to(device))
            self.doremi.update()
        return batch_samples, None  # our loss needs no token count from the Trainer

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if "domain_ids" not in inputs:  # e.g. an evaluation dataset of the usual kind
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        x, domain_ids = inputs["input_ids"], inputs["domain_ids"]
        losses = token_losses(model, x)
        if self.args.gradient_accumulation_steps == 1:
            self._add(losses.detach(), x, domain_ids)
            self.doremi.update()
        loss = self.doremi.loss(losses, domain_ids)
        if inputs["micro"] == self.args.gradient_accumulation_steps - 1:
            self._consumed = inputs["state"]
        return (loss, {"token_losses": losses}) if return_outputs else loss

    def _add(self, losses, x, domain_ids) -> None:
        with torch.no_grad(), self.accelerator.autocast():
            ref = token_losses(self.reference, x)
        self.doremi.add(losses, ref, domain_ids)

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if "loss" in logs and self.doremi.steps:
            logs.update({f"domain_weight/{d}": w for d, w in
                         as_dict(self.doremi.weights, self.domains).items()})
        super().log(logs, *args, **kwargs)


class _DoReMiFiles(TrainerCallback):
    """The weights history, the state in each checkpoint, and ᾱ at the end (main process)."""

    def __init__(self, trainer: DoReMiTrainer):
        self.trainer = trainer
        self.history: JsonlAppender | None = None

    def on_step_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            if self.history is None:
                Path(args.output_dir).mkdir(parents=True, exist_ok=True)
                self.history = JsonlAppender(Path(args.output_dir) / HISTORY_FILE)
            weights = as_dict(self.trainer.doremi.weights, self.trainer.domains)
            self.history.write({"step": state.global_step, "weights": weights})

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            if self.history is not None:
                self.history.close()
                self.history = None
            t = self.trainer
            write_weights(Path(args.output_dir) / WEIGHTS_FILE, t.doremi.average, t.domains,
                          layout=t.weights_layout)


def _batches(data, sampling: str, args: TrainingArguments) -> DomainBatches:
    """The proxy's batches in the layout of `args`, or the given ones checked against it."""
    accum, world = args.gradient_accumulation_steps, args.world_size
    global_batch = args.per_device_train_batch_size * accum * world
    if not isinstance(data, DomainBatches):
        ds = data if isinstance(data, Dataset) else open_dataset(Path(data))
        return DomainBatches(ds, sampling, global_batch, seed=args.data_seed or args.seed,
                             grad_accum=accum, rank=args.process_index, world_size=world,
                             steps=args.max_steps)
    layout = (data.sampler.batch_size, data.grad_accum, data.world_size, data.rank)
    wanted = (global_batch, accum, world, args.process_index)
    if layout != wanted:
        raise ValueError(
            "DoReMiTrainer: the DomainBatches layout (global batch, accumulation, world size, rank) "
            f"= {layout} does not match the TrainingArguments' {wanted}."
        )
    return data


def _write_state(ckpt: Path, trainer: DoReMiTrainer) -> None:
    """The DoReMi weights' state and the loader's position, into checkpoint folder `ckpt`."""
    write_json_atomic(ckpt / STATE_FILE, {
        "step": trainer.state.global_step,
        "domains": trainer.domains,
        "doremi": trainer.doremi.state_dict(),
        "batches": trainer._consumed,
    })


def _resumable(out: Path) -> Path | None:
    """The newest complete checkpoint-N in `out`: its DoReMi state, and the Trainer's own state,
    which the Trainer writes after everything else of the checkpoint."""
    found = [(int(m.group(1)), p) for p in out.glob("checkpoint-*")
             if (m := re.fullmatch(r"checkpoint-(\d+)", p.name)) and (p / STATE_FILE).is_file()
             and (p / TRAINER_STATE).is_file()]
    return max(found)[1] if found else None
