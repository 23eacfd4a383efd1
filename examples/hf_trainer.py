"""A DoReMi proxy trained by a transformers Trainer (pip install 'mixtune[hf]').

    python examples/hf_trainer.py DATA REFERENCE_RUN OUT [--steps 200 --batch-size 32 --grad-accum 1]
    torchrun --nproc-per-node 2 examples/hf_trainer.py ...      # the same weights, two processes

Your TrainingArguments drive it: batch layout, precision, logging, checkpoints (`--resume`
continues from the newest one, DoReMi's weights included). The optimizer and schedule here are
the CLI's (AdamW, 6% warm-up, exponential decay to a tenth), so with the same settings the weights
match `mixtune doremi --data DATA --reference REFERENCE_RUN --seed 0`; drop `optimizers=` to use
the Trainer's own (set learning_rate, warmup, lr_scheduler_type as usual).
"""

import argparse
import os

import torch
from transformers import TrainingArguments

import mixtune as mt
from mixtune.hf import DoReMiTrainer

p = argparse.ArgumentParser()
p.add_argument("data"), p.add_argument("reference"), p.add_argument("out")
for flag, default in [("--steps", 200), ("--batch-size", 32), ("--grad-accum", 1), ("--seed", 0),
                      ("--save-steps", 50)]:
    p.add_argument(flag, type=int, default=default)
p.add_argument("--scale", default="tiny")
p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in OUT")
a = p.parse_args()

ds = mt.open_dataset(a.data)
model = mt.build_model(a.scale, ds.vocab_size, ds.seq_len, ds.eos_id, a.seed)
reference = mt.load_model(a.reference)
world = int(os.environ.get("WORLD_SIZE", 1))
optim = mt.OptimConfig.for_scale(a.scale)
args = TrainingArguments(
    output_dir=a.out, max_steps=a.steps, seed=a.seed, gradient_accumulation_steps=a.grad_accum,
    per_device_train_batch_size=a.batch_size // (a.grad_accum * world),
    max_grad_norm=optim.grad_clip, save_steps=a.save_steps, logging_steps=10,
    report_to="none", use_cpu=not torch.cuda.is_available(), bf16=torch.cuda.is_available(),
    ddp_find_unused_parameters=False,
)
opt = mt.build_optimizer(model, optim)
schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: mt.lr_at(s, optim, a.steps) / optim.lr)
trainer = DoReMiTrainer(model=model, args=args, reference_model=reference, train_dataset=ds,
                        optimizers=(opt, schedule))
trainer.train(resume_from_checkpoint=a.resume or None)
if trainer.is_world_process_zero():
    print("average domain weights:", {d: round(w, 4) for d, w in trainer.domain_weights.items()})
# Under torchrun: end gloo's threads before the interpreter exits (left running, they can abort
# it: "terminate called without an active exception"), every rank together: one rank tearing its
# group down while rank 0 still printed aborted one of three CI runs on 2026-12-04.
if torch.distributed.is_initialized():
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
