"""Transformers `Trainer`s whose data mixture a mixtune method sets as they train (pip install
'mixtune[hf]'): `DoReMiTrainer` trains a DoReMi proxy, `AioliTrainer` a model on the mixture Aioli
chooses online.

    args = TrainingArguments(output_dir="runs/proxy", max_steps=200, learning_rate=1e-3,
                             per_device_train_batch_size=16, gradient_accumulation_steps=2)
    trainer = DoReMiTrainer(model=proxy, args=args, reference_model=reference, train_dataset="data")
    trainer.train()                            # or .train(resume_from_checkpoint=True)
    trainer.domain_weights                     # ᾱ; also output_dir/domain_weights.json

    trainer = AioliTrainer(model=model, args=args, train_dataset="data", aioli={"round_steps": 50})
    trainer.train()
    trainer.domain_weights                     # the mixture Aioli holds at the end

Your `TrainingArguments` set the batch layout (global batch = per-device batch × accumulation ×
processes), the optimizer, schedule, precision and loggers; the model is any causal LM on the
dataset's tokenizer. What the Trainer cannot know, these classes add, as the CLI does it:

- batches come from `DomainBatches` (the method's mixture), each process taking its slice of every
  global batch, so the data does not depend on the layout;
- the mixture is logged through the Trainer's loggers (`domain_weight/<domain>`) and appended to
  `output_dir/weights_history.jsonl`; the proposal is written to `output_dir/domain_weights.json`
  at the end, in the reference DoReMi code's layout as the CLI writes it (`weights_layout="flat"`:
  `{domain: weight}`);
- every `checkpoint-N/` also holds the method's state and the loader's position
  (`doremi_state.json`, `aioli_state.json`), so `train(resume_from_checkpoint=...)` continues both
  exactly; the loader is restored in O(1), not by replaying batches (`ignore_data_skip` is set).

`DoReMiTrainer` (as `mixtune doremi`): before any backward pass of a step, every micro-batch is
scored against the frozen reference and the excess losses are summed over micro-batches and
processes: α_t depends on the global batch only; the loss is DoReMi's Σ α_i·(mean loss of domain
i), already scaled for accumulation and DDP. It logs α_t and proposes ᾱ.

`AioliTrainer` (as `mixtune train --method aioli`): before the micro-batches of a step are drawn,
if Aioli asks (around each perturbation of its sweeps) every process scores its share of the
held-out text (`heldout_losses`, all-reduced) and Aioli may move the mixture that step is drawn
from; the loss is the plain mean over the global batch's tokens. It logs and proposes the mixture
p it holds (the sweeps' perturbed mixtures are what is drawn, not what is logged, as in the CLI).
The batches are drawn in the trainer's process: `dataloader_num_workers` > 0 is refused, since a
worker would draw from its own copy of Aioli, which never sees the losses. Sharded parameters
(FSDP, DeepSpeed) are refused too: ranks score different numbers of held-out windows, so collective
forward passes would hang.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from mixtune.data.loader import DomainBatches, Weights
from mixtune.data.store import Dataset, open_dataset
from mixtune.data.weights import Layout, as_dict, check_layout, resolve_weights, write_weights
from mixtune.io import JsonlAppender, truncate_jsonl, write_json_atomic
from mixtune.mixing.aioli import Aioli
from mixtune.mixing.doremi import ETA, SMOOTHING, DoReMi
from mixtune.model.loss import token_losses
from mixtune.train.heldout import heldout_losses

STATE_FILE = "doremi_state.json"
AIOLI_STATE_FILE = "aioli_state.json"
TRAINER_STATE = "trainer_state.json"  # transformers' TRAINER_STATE_NAME: the last file it saves
HISTORY_FILE = "weights_history.jsonl"
WEIGHTS_FILE = "domain_weights.json"


class _MixtureTrainer(Trainer):
    """What the trainers share: `DomainBatches` as the data, the method's state in every
    checkpoint, exact resume, the mixture logged and written. A subclass names its state file and
    key and gives the method's state (`_method_state`, `_load_method_state`), the weights of the
    step just done (`_step_weights`: logged and recorded) and the proposal (`_proposal`)."""

    state_file: ClassVar[str]
    state_key: ClassVar[str]

    def __init__(self, model, args: TrainingArguments, batches: DomainBatches,
                 weights_layout: Layout, **kwargs):
        self.weights_layout = weights_layout
        self._consumed = batches.state_dict()  # where the batches used by finished steps end
        # Our loss is already the global batch's share: no division by the accumulation steps.
        # The loader's position is restored from the state file.
        self.loss_is_scaled_for_ga = True
        args.ignore_data_skip = True
        callbacks = [*(kwargs.pop("callbacks", None) or []), _MixtureFiles(self)]
        super().__init__(model=model, args=args, train_dataset=batches, callbacks=callbacks, **kwargs)

    def _check_args(self, args: TrainingArguments, weights_layout: Layout) -> None:
        """Settings refused before anything is built."""
        check_layout(weights_layout)  # now, not after the training that ends in writing it
        name = type(self).__name__
        if args.max_steps is None or args.max_steps <= 0:
            raise ValueError(
                f"{name}: set TrainingArguments(max_steps=N): domain-weighted batches do not "
                "run out, so the Trainer cannot count epochs."
            )
        if args.n_gpu > 1:
            raise ValueError(
                f"{name}: torch.nn.DataParallel (several GPUs in one process) is not supported; "
                "launch one process per GPU with torchrun."
            )

    @property
    def domains(self) -> list[str]:
        return list(self.train_dataset.domains)

    @property
    def domain_weights(self) -> dict[str, float]:
        """The mixture the method proposes (DoReMi: ᾱ so far; Aioli: the mixture it holds)."""
        return as_dict(self._proposal(), self.domains)

    def _save_checkpoint(self, model, trial) -> None:
        # The method's state goes in before the Trainer saves the rest and then deletes older
        # checkpoints (save_total_limit): written in `on_save`, after the deletion, a kill in
        # between left no resumable checkpoint with save_total_limit=1. A checkpoint counts as
        # resumable once the Trainer's own state, written last, is there too (`_resumable`).
        if self.args.should_save:
            ckpt = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
            write_json_atomic(ckpt / self.state_file, {
                "step": self.state.global_step, "domains": self.domains,
                self.state_key: self._method_state(), "batches": self._consumed,
            })
        super()._save_checkpoint(model, trial)

    def train(self, resume_from_checkpoint: str | bool | None = None, **kwargs):
        out = Path(self.args.output_dir)
        if resume_from_checkpoint:
            resume_from_checkpoint = str(self._restore(out, resume_from_checkpoint))
        elif self.args.should_save:
            (out / HISTORY_FILE).unlink(missing_ok=True)
        return super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)

    def _restore(self, out: Path, which: str | bool) -> Path:
        """Load the method's state and the loader's position of checkpoint `which` (True: the
        newest complete one in `out`); forget the history after it. Returns the checkpoint."""
        ckpt = _resumable(out, self.state_file) if which is True else Path(which)
        if ckpt is None:
            raise ValueError(f"no checkpoint with {self.state_file} in {out} to resume from")
        state_file = ckpt / self.state_file
        if not state_file.is_file():
            raise ValueError(
                f"{ckpt}: no {self.state_file}; it was not written by {type(self).__name__} (or "
                "its save was cut off): resume from an earlier checkpoint."
            )
        saved = json.loads(state_file.read_text())
        if saved.get("domains", self.domains) != self.domains:
            raise ValueError(f"{state_file}: domains {saved['domains']}, not the dataset's "
                             f"{self.domains}")
        self._load_method_state(saved[self.state_key])
        self.train_dataset.load_state_dict(saved["batches"])
        self._consumed = saved["batches"]
        step = int(saved["step"])
        if self.args.should_save:
            truncate_jsonl(out / HISTORY_FILE, lambda row: row["step"] <= step)
        return ckpt

    def get_train_dataloader(self) -> torch.utils.data.DataLoader:
        # The batches are already this process's micro-batches: no collation, no sharding by
        # accelerate (which would split them again across processes).
        workers = self.args.dataloader_num_workers
        return torch.utils.data.DataLoader(
            self.train_dataset, batch_size=None, num_workers=workers,
            pin_memory=self.args.dataloader_pin_memory,
            prefetch_factor=self.args.dataloader_prefetch_factor if workers else None,
        )

    def _draw(self, epoch_iterator, num_batches: int) -> list[dict]:
        """The step's micro-batches; the loader's position after them is what the checkpoint
        saved after this step records."""
        batch_samples = list(itertools.islice(epoch_iterator, num_batches))
        if batch_samples:
            self._consumed = batch_samples[-1]["state"]
        return batch_samples

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        weights = self._step_weights() if "loss" in logs else None
        if weights is not None:
            named = as_dict(weights, self.domains)
            logs.update({f"domain_weight/{d}": w for d, w in named.items()})
        super().log(logs, *args, **kwargs)

    def _method_state(self) -> dict:
        raise NotImplementedError

    def _load_method_state(self, state: dict) -> None:
        raise NotImplementedError

    def _step_weights(self) -> np.ndarray | None:
        raise NotImplementedError

    def _proposal(self) -> np.ndarray:
        raise NotImplementedError


class DoReMiTrainer(_MixtureTrainer):
    state_file, state_key = STATE_FILE, "doremi"

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
        self._check_args(args, weights_layout)
        batches = _batches(train_dataset, sampling, args, type(self).__name__)
        self.doremi = DoReMi(
            batches.domains, eta=eta, smoothing=smoothing, loss_normalization=loss_normalization,
            sampling=batches.weights_at(0), world_size=args.world_size,
        )
        self.reference = reference_model.eval().requires_grad_(False)
        super().__init__(model, args, batches, weights_layout, **kwargs)
        self.reference.to(self.args.device)

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        batch_samples = self._draw(epoch_iterator, num_batches)
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
        return (loss, {"token_losses": losses}) if return_outputs else loss

    def _add(self, losses, x, domain_ids) -> None:
        with torch.no_grad(), self.accelerator.autocast():
            ref = token_losses(self.reference, x)
        self.doremi.add(losses, ref, domain_ids)

    def _method_state(self) -> dict:
        return self.doremi.state_dict()

    def _load_method_state(self, state: dict) -> None:
        self.doremi.load_state_dict(state)

    def _step_weights(self) -> np.ndarray | None:
        return self.doremi.weights if self.doremi.steps else None

    def _proposal(self) -> np.ndarray:
        return self.doremi.average


class AioliTrainer(_MixtureTrainer):
    state_file, state_key = AIOLI_STATE_FILE, "aioli"

    def __init__(
        self,
        model: torch.nn.Module,
        args: TrainingArguments,
        *,
        train_dataset: str | os.PathLike | Dataset,
        aioli: Aioli | Mapping | None = None,
        eval_max_tokens: int | None = None,
        weights_layout: Layout = "doremi",
        **kwargs,
    ):
        """`train_dataset`: a prepared dataset (folder or `open_dataset`), drawn in the batch
        layout of `args` from the mixture `aioli` sets step by step. `aioli`: an `Aioli` over the
        dataset's domains, or its options (`round_steps`, `sweep_steps`, `sweep_share`, `eta`,
        `epsilon`, `heldout_tokens`, `init`: weights or a spec such as `natural`; as `mixtune
        train --method aioli --help` says; None: the defaults). `eval_max_tokens`: the validation
        tokens per domain your final evaluation scores (None: all), which the held-out text avoids
        (`heldout_losses`; scored `per_device_eval_batch_size` windows at a time). `weights_layout`:
        of `domain_weights.json`, `doremi` or `flat`. Other keyword arguments go to `Trainer`."""
        self._check_args(args, weights_layout)
        if args.dataloader_num_workers:
            raise ValueError(
                f"AioliTrainer: dataloader_num_workers={args.dataloader_num_workers}: the batches "
                "are drawn in the trainer's process (a step's mixture depends on the held-out "
                "losses measured just before it, which a worker's copy of Aioli never sees); set "
                "dataloader_num_workers=0 (reading the memory-mapped windows is cheap)."
            )
        if isinstance(train_dataset, DomainBatches):
            raise TypeError("AioliTrainer: give the dataset (a folder or `open_dataset`); its "
                            "batches are drawn from the mixture Aioli sets, step by step.")
        ds = (train_dataset if isinstance(train_dataset, Dataset)
              else open_dataset(Path(train_dataset)))
        self.aioli = _aioli(ds, aioli, args)
        self.eval_max_tokens = eval_max_tokens
        super().__init__(model, args, _batches(ds, self.aioli.weights, args, "AioliTrainer"),
                         weights_layout, **kwargs)
        if self.is_fsdp_enabled or self.is_deepspeed_enabled:
            raise ValueError(
                "AioliTrainer: FSDP and DeepSpeed are not supported: ranks score different numbers "
                "of held-out windows, so forward passes that gather sharded parameters would hang. "
                "Use DDP (torchrun) or the CLI (`mixtune train --method aioli`)."
            )

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        # Before the step's first micro-batch is drawn: its mixture may follow from these losses
        # (the loader asks `aioli.weights(step)` when it plans the step's global batch).
        step = self.state.global_step
        if step < self.args.max_steps and self.aioli.wants_losses(step):
            self.aioli.observe_losses(step, *self._heldout_losses())
        return self._draw(epoch_iterator, num_batches), None  # our loss counts its own tokens

    def _heldout_losses(self) -> tuple[np.ndarray, np.ndarray]:
        """[k] held-out losses and target tokens of the model as it is (every rank its share)."""
        a, batches = self.args, self.train_dataset
        amp = torch.bfloat16 if a.bf16 else torch.float16 if a.fp16 else None
        return heldout_losses(
            self.model, batches.dataset, self.aioli.heldout_tokens, seq_len=batches.seq_len,
            batch_size=a.per_device_eval_batch_size, device=a.device, autocast_dtype=amp,
            rank=a.process_index, world_size=a.world_size, eval_max_tokens=self.eval_max_tokens)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if "domain_ids" not in inputs:  # e.g. an evaluation dataset of the usual kind
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        losses = token_losses(model, inputs["input_ids"])
        # This micro-batch's share of the global batch's mean token loss, as the CLI computes it
        # (a float32 factor 1/tokens, summed), times the world size: DDP averages gradients over
        # ranks. So the gradient is the CLI's whatever the layout; not divided by accumulation.
        b = self.train_dataset
        share = torch.tensor(1.0 / (b.sampler.batch_size * b.seq_len), dtype=torch.float32,
                             device=losses.device)
        loss = (losses * share).sum() * self.args.world_size
        return (loss, {"token_losses": losses}) if return_outputs else loss

    def _method_state(self) -> dict:
        return self.aioli.state_dict()

    def _load_method_state(self, state: dict) -> None:
        self.aioli.load_state_dict(state)

    def _step_weights(self) -> np.ndarray:
        return self.aioli.mixture

    def _proposal(self) -> np.ndarray:
        return self.aioli.mixture


class _MixtureFiles(TrainerCallback):
    """The weights history, and the proposal at the end (main process)."""

    def __init__(self, trainer: _MixtureTrainer):
        self.trainer = trainer
        self.history: JsonlAppender | None = None

    def on_step_end(self, args, state, control, **kwargs):
        weights = self.trainer._step_weights()
        if state.is_world_process_zero and weights is not None:
            if self.history is None:
                Path(args.output_dir).mkdir(parents=True, exist_ok=True)
                self.history = JsonlAppender(Path(args.output_dir) / HISTORY_FILE)
            self.history.write({"step": state.global_step,
                                "weights": as_dict(weights, self.trainer.domains)})

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            if self.history is not None:
                self.history.close()
                self.history = None
            t = self.trainer
            write_weights(Path(args.output_dir) / WEIGHTS_FILE, t._proposal(), t.domains,
                          layout=t.weights_layout)


def _batches(data, sampling: Weights, args: TrainingArguments, name: str) -> DomainBatches:
    """The batches in the layout of `args`, or the given ones checked against it."""
    accum, world, global_batch = args.gradient_accumulation_steps, args.world_size, _global(args)
    if not isinstance(data, DomainBatches):
        ds = data if isinstance(data, Dataset) else open_dataset(Path(data))
        return DomainBatches(ds, sampling, global_batch, seed=args.data_seed or args.seed,
                             grad_accum=accum, rank=args.process_index, world_size=world,
                             steps=args.max_steps)
    layout = (data.sampler.batch_size, data.grad_accum, data.world_size, data.rank)
    wanted = (global_batch, accum, world, args.process_index)
    if layout != wanted:
        raise ValueError(
            f"{name}: the DomainBatches layout (global batch, accumulation, world size, rank) "
            f"= {layout} does not match the TrainingArguments' {wanted}."
        )
    return data


def _aioli(ds: Dataset, aioli: Aioli | Mapping | None, args: TrainingArguments) -> Aioli:
    """The given `Aioli`, checked against the dataset, or one built from options; an `init` spec
    is resolved as the CLI does (`unimax` over the run's training tokens)."""
    if isinstance(aioli, Aioli):
        if aioli.domains != ds.domains:
            raise ValueError(f"AioliTrainer: Aioli's domains {aioli.domains} are not the "
                             f"dataset's {ds.domains}")
        return aioli
    opts = dict(aioli or {})
    if isinstance(opts.get("init"), str):
        budget = args.max_steps * _global(args) * ds.seq_len
        opts["init"] = resolve_weights(opts["init"], ds.domains, ds.counts("train"), budget)
    return Aioli(ds.domains, **opts)


def _global(args: TrainingArguments) -> int:
    """The global batch in sequences: per-device batch × accumulation × processes."""
    return args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size


def _resumable(out: Path, state_file: str) -> Path | None:
    """The newest complete checkpoint-N in `out`: the method's state, and the Trainer's own state,
    which the Trainer writes after everything else of the checkpoint."""
    found = [(int(m.group(1)), p) for p in out.glob("checkpoint-*")
             if (m := re.fullmatch(r"checkpoint-(\d+)", p.name)) and (p / state_file).is_file()
             and (p / TRAINER_STATE).is_file()]
    return max(found)[1] if found else None
