"""A main model trained by a transformers Trainer on the mixture Aioli chooses as it trains
(pip install 'mixtune[hf]').

    python examples/hf_aioli.py DATA OUT [--steps 200 --batch-size 32 --grad-accum 1]
    torchrun --nproc-per-node 2 examples/hf_aioli.py ...      # the same weights, two processes

Your TrainingArguments drive it: batch layout, precision, logging, checkpoints (`--resume`
continues from the newest one, Aioli's state included, mid-sweep too). The optimizer and schedule
here are the CLI's (AdamW, 6% warm-up, exponential decay to a tenth), so with the same settings the
weights match `mixtune train --data DATA --method aioli --round-steps 8 --sweep-steps 1
--sweep-share 0.5 --heldout-tokens 64 --eval-max-tokens-per-domain 256 --steps ... --seed ...`;
drop `optimizers=` to use the Trainer's own (set learning_rate, warmup, lr_scheduler_type).
"""

import argparse
import os

import torch
from transformers import TrainingArguments

import mixtune as mt
from mixtune.hf import AioliTrainer

p = argparse.ArgumentParser()
p.add_argument("data"), p.add_argument("out")
for flag, default in [("--steps", 200), ("--batch-size", 32), ("--grad-accum", 1), ("--seed", 0),
                      ("--round-steps", 8), ("--eval-tokens", 256), ("--save-steps", 50)]:
    p.add_argument(flag, type=int, default=default)
p.add_argument("--scale", default="tiny")
p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in OUT")
a = p.parse_args()

ds = mt.open_dataset(a.data)
recipe = mt.OptimConfig.for_scale(a.scale)  # the CLI's AdamW settings and schedule
per_device = a.batch_size // (a.grad_accum * int(os.environ.get("WORLD_SIZE", 1)))  # torchrun
gpu = torch.cuda.is_available()
args = TrainingArguments(a.out, max_steps=a.steps, seed=a.seed,
                         per_device_train_batch_size=per_device,
                         gradient_accumulation_steps=a.grad_accum, max_grad_norm=recipe.grad_clip,
                         save_steps=a.save_steps, logging_steps=10, report_to="none",
                         use_cpu=not gpu, bf16=gpu, ddp_find_unused_parameters=False)
model = mt.build_model(a.scale, ds.vocab_size, ds.seq_len, ds.eos_id, a.seed)
opt = mt.build_optimizer(model, recipe)
schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: mt.lr_at(s, recipe, a.steps)
                                             / recipe.lr)
# Held-out losses are measured on text the final evaluation (its first --eval-tokens tokens per
# domain) does not score; the batches are drawn in this process (no dataloader workers).
aioli = dict(round_steps=a.round_steps, sweep_steps=1, sweep_share=0.5, heldout_tokens=64)
trainer = AioliTrainer(model=model, args=args, train_dataset=ds, aioli=aioli,
                       eval_max_tokens=a.eval_tokens, optimizers=(opt, schedule))
trainer.train(resume_from_checkpoint=a.resume or None)
if trainer.is_world_process_zero():
    print("the mixture at the end:", {d: round(w, 4) for d, w in trainer.domain_weights.items()})
# Under torchrun: end gloo's threads before the interpreter exits (left running, they can abort
# it: "terminate called without an active exception"), every rank together: one rank tearing its
# group down while rank 0 still printed aborted one of three CI runs on 2026-12-04.
if torch.distributed.is_initialized():
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
