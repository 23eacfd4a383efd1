"""The run folder of one training run, and the rules for writing into it.

    config.yaml            the resolved settings (flat keys, as on the command line)
    metrics.jsonl          one row per step and per evaluation (records.TrainRow / EvalRow)
    weights_history.jsonl  the mixture method's weights per step (a DoReMi proxy's α_t)
    checkpoints/step-N/    everything needed to continue exactly (checkpoint.py)
    final/                 a Hugging Face model folder with the dataset's tokenizer
    eval.json              the final evaluation; domain_weights.json: a proxy's ᾱ

A folder holding finished work (a checkpoint or final/) refuses other settings; a folder whose
earlier start failed before its first checkpoint takes the corrected settings with a notice.
One run at a time in a folder: a second one refuses, naming the first (lock.py), from `check`
(or `start`, which creates the folder) until `finish`, or until the run ends otherwise.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from mixtune import distributed, lock, schema
from mixtune.data.store import Dataset
from mixtune.data.tokenizer import copy_tokenizer_files, load_tokenizer
from mixtune.data.weights import as_dict, mixture_name, resolve_weights, write_weights
from mixtune.errors import UserError
from mixtune.io import (
    remove,
    staged_dir,
    truncate_jsonl,
    verdict,
    write_json_atomic,
    write_text_atomic,
)
from mixtune.provenance import dataset_uuid, eval_metrics, write_eval_record, write_model_record
from mixtune.records import EvalFile, EvalResult
from mixtune.train import checkpoint
from mixtune.train.config import TrainConfig, load_train_config

log = logging.getLogger(__name__)

CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
HISTORY = "weights_history.jsonl"


class RunDir:
    def __init__(self, path: Path, dist: distributed.Dist):
        self.path, self.dist = Path(path), dist
        self._lock: lock.Lock | None = None  # rank 0's, while it runs in the folder

    @property
    def complete(self) -> bool:
        return (self.path / "final").is_dir()

    def say_complete(self) -> None:
        if self.dist.is_main:
            log.info("%s is already complete (final/ present); nothing to do.", self.path)

    def has_work(self) -> bool:
        return self.complete or bool(checkpoint.list_steps(self.path))

    def check(self, cfg: TrainConfig) -> None:
        """Refuse settings that differ from those of the work already in the folder."""
        def decide() -> str:
            if self.path.is_dir():  # (a folder that start() is to create holds nothing yet)
                self._hold()
            return self._changes(cfg)

        changes = distributed.on_main(decide)  # every rank, one decision
        if changes and self.dist.is_main:
            log.warning("%s: an earlier start failed before its first checkpoint; starting "
                        "again with the new settings (%s).", self.path, changes)
            for name in (CONFIG, METRICS, HISTORY):
                remove(self.path / name)
        distributed.barrier()

    def _changes(self, cfg: TrainConfig) -> str:
        """'' if the folder holds this run or none; the changes if an earlier start with other
        settings left no work behind (then it starts again); a UserError if it did."""
        saved = self.path / CONFIG
        if not saved.is_file():
            return ""
        try:
            old = load_train_config(saved).identity()
        except UserError:
            if self.has_work():
                raise
            old = {}  # a config.yaml from a start that failed: nothing to protect
        found = verdict(old, cfg.identity(), complete=self.complete, keeps_work=self.has_work())
        if found.action == "refuse":
            raise UserError(
                f"{self.path} holds a run with other settings ({found.changes}). Use another "
                f"--out, or delete {self.path} to start over."
            )
        return found.changes

    def start(self, cfg: TrainConfig) -> None:
        """Record the settings (after everything that can fail on bad input has been checked)."""
        distributed.on_main(self._hold)
        if self.dist.is_main:
            write_text_atomic(self.path / CONFIG, cfg.to_yaml())
            checkpoint.clean_partial(self.path)
        distributed.barrier()

    def _hold(self) -> None:
        """Lock the folder (once): a UserError naming the process already running in it."""
        if self._lock is None:
            self._lock = lock.Lock(self.path).acquire()

    def forget_after(self, step: int, steps: int) -> None:
        """Drop log rows of steps after the checkpoint resumed from: they will be recomputed. The
        final evaluation is redone too when a run resumes at its last step."""
        if not self.dist.is_main:
            return
        def before(row: dict) -> bool:
            final_eval = row.get("kind") == "eval" and row.get("step") == steps == step
            return isinstance(row.get("step"), int) and row["step"] <= step and not final_eval

        truncate_jsonl(self.path / METRICS, before)
        truncate_jsonl(self.path / HISTORY, before)

    def finish(self, model, ds: Dataset, cfg: TrainConfig, seq_len: int, result: EvalResult,
               proposal: np.ndarray | None, downstream: dict | None = None) -> None:
        """eval.json, domain_weights.json (a proposal), then final/ last: its presence marks the
        run complete."""
        record = EvalFile(result, step=cfg.steps, downstream=downstream)
        write_json_atomic(self.path / "eval.json", record.to_json())
        if proposal is not None:
            write_weights(self.path / "domain_weights.json", proposal, ds.domains,
                          layout=cfg.weights_layout)
        model_rec = write_model_record(self.path, **model_fields(ds, cfg, seq_len, proposal))
        write_eval_record(self.path, model_rec, step=cfg.steps, **eval_metrics(result, downstream))
        save_final(model, ds, cfg, self.path / "final", seq_len)
        if self._lock is not None:  # complete: another process may only skip it now
            self._lock.release()


def model_fields(ds: Dataset, cfg: TrainConfig, seq_len: int, proposal: np.ndarray | None) -> dict:
    """What identifies a trained model: its dataset, scale, tokens, recipe and mixture."""
    from mixtune.model.scales import count_params

    o = cfg.optim
    params, _ = count_params(cfg.scale, ds.vocab_size)
    mixing = schema.to_flat(cfg.mixing)
    tokens = cfg.steps * cfg.batch_size * seq_len
    if cfg.mixing.method == "static":  # the weights the loop's StaticMixer trained on
        spec = cfg.mixing.weights
        weights = resolve_weights(spec, ds.domains, ds.counts("train"), tokens)
        mixture = {"name": mixture_name(spec), "spec": spec, "weights": as_dict(weights, ds.domains)}
    else:  # an online method: a proxy whose result is a mixture, or a main model (Aioli's)
        main = getattr(cfg.mixing, "main_model", False)
        mixture = {"name": cfg.mixing.method if main else f"{cfg.mixing.method} proxy", "spec": None,
                   "weights": as_dict(proposal, ds.domains) if proposal is not None else None}
    return {
        "dataset_name": ds.path.name,
        "dataset_uuid": dataset_uuid(ds.path),
        "dataset_path": str(ds.path.resolve()),
        "method": cfg.mixing.method,
        "mixture": mixture,
        "hyperparameters": {
            "scale": cfg.scale, "params": params, "tokens": tokens,
            "steps": cfg.steps, "global_bs": cfg.batch_size, "seq_len": seq_len, "seed": cfg.seed,
            "lr": o.lr, "wd": o.weight_decay, "beta2": o.beta2, "schedule": o.schedule,
            "warmup": o.warmup_steps if o.warmup_steps is not None else o.warmup_fraction,
            "cd": o.lr * o.final_lr_ratio, "z_loss": o.z_loss, "grad_clip": o.grad_clip,
            "chinchilla_multiplier": cfg.chinchilla_multiplier,
            "mixing": mixing,
        },
    }


def save_final(model, ds: Dataset, cfg: TrainConfig, final: Path, seq_len: int) -> None:
    """`final/`: an HF model folder with the dataset's tokenizer, published atomically."""
    with staged_dir(final) as staged:
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
                "method": cfg.mixing.method,
                "mixing": schema.to_flat(cfg.mixing),
                # The sampling mixture (static: its weights; a proxy: its own sampling).
                "weights": getattr(cfg.mixing, "weights", getattr(cfg.mixing, "proxy_sampling", None)),
                "tokenizer_sha256": ds.tokenizer_hash,
                "dataset": str(Path(cfg.data).resolve()),
            },
        )
