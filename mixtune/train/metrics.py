"""Where a run's numbers go: metrics.jsonl (the source of truth), weights_history.jsonl, a
progress bar or progress lines, and optionally a TensorBoard / W&B mirror. Rank 0 only."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mixtune.errors import UserError
from mixtune.io import JsonlAppender
from mixtune.progress import Progress
from mixtune.records import EvalRow, TrainRow
from mixtune.train.config import TrainConfig
from mixtune.train.run_dir import HISTORY, METRICS


class MetricsLog:
    def __init__(self, run_dir: Path, cfg: TrainConfig, domains: list[str], start: int,
                 tokens_per_step: int):
        self.domains = domains
        self.metrics = JsonlAppender(run_dir / METRICS)
        self.history_path, self.history = run_dir / HISTORY, None
        self.mirror = Mirror(cfg, run_dir)
        self.progress = Progress("train", cfg.steps, initial=start, unit="step",
                                 every=cfg.log.progress_every, rate_unit=("tokens", tokens_per_step))

    def named(self, values: np.ndarray) -> dict[str, float]:
        return {d: float(v) for d, v in zip(self.domains, values, strict=True)}

    def train(self, row: TrainRow, history: np.ndarray | None) -> None:
        self.metrics.write(row.to_json())
        if history is not None:
            if self.history is None:
                self.history = JsonlAppender(self.history_path)
            self.history.write({"step": row.step, "weights": self.named(history)})
        self.mirror.log(row.to_json())
        self.progress.update(1, loss=row.loss)

    def eval(self, row: EvalRow) -> None:
        self.metrics.write(row.to_json())
        self.mirror.log(row.to_json())

    def close(self) -> None:
        self.progress.close()
        self.metrics.close()
        if self.history is not None:
            self.history.close()
        self.mirror.close()


class Mirror:
    """Optional TensorBoard / W&B copy of the metrics rows (metrics.jsonl stays the truth)."""

    def __init__(self, cfg: TrainConfig, out: Path):
        self.kind, self.impl = cfg.log.report_to, None
        try:
            if self.kind == "tensorboard":
                from torch.utils.tensorboard import SummaryWriter

                self.impl = SummaryWriter(str(out / "tensorboard"))
            elif self.kind == "wandb":
                import wandb

                self.impl = wandb.init(project="mixtune", name=out.name, dir=str(out),
                                       config=cfg.identity(), resume="allow")
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
                flat.update({f"{row['kind']}/{key}/{d}": v for d, v in value.items()
                             if isinstance(v, (int, float))})
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
