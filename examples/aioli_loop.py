"""A main model trained by a plain PyTorch loop on the mixture Aioli chooses as it trains:
mixtune's loader, Aioli and held-out losses, your loop.

    python examples/aioli_loop.py DATA OUT [--steps 200 --batch-size 32 --grad-accum 1]

With the same settings it gives the domain weights `mixtune train --data DATA --method aioli
--round-steps 8 --sweep-steps 1 --sweep-share 0.5 --heldout-tokens 64 --steps ... --seed ...`
gives (the CLI's model, optimizer and schedule are used here).
"""

import argparse

import torch

import mixtune as mt

p = argparse.ArgumentParser()
p.add_argument("data"), p.add_argument("out")
for flag, default in [("--steps", 200), ("--batch-size", 32), ("--grad-accum", 1), ("--seed", 0),
                      ("--round-steps", 8), ("--eval-tokens", 256)]:
    p.add_argument(flag, type=int, default=default)
p.add_argument("--scale", default="tiny")
args = p.parse_args()

ds = mt.open_dataset(args.data)
model = mt.build_model(args.scale, ds.vocab_size, ds.seq_len, ds.eos_id, args.seed).train()
optim = mt.OptimConfig.for_scale(args.scale)
opt = mt.build_optimizer(model, optim)
aioli = mt.Aioli(ds.domains, round_steps=args.round_steps, sweep_steps=1, sweep_share=0.5,
                 heldout_tokens=64)
# Iterated here, not in DataLoader workers: a step's mixture depends on the losses measured
# just before it.
batches = iter(mt.DomainBatches(ds, aioli.weights, args.batch_size, seed=args.seed,
                                grad_accum=args.grad_accum, steps=args.steps))

for step in range(args.steps):
    if aioli.wants_losses(step):  # around each perturbation of a sweep; the final evaluation's
        # first --eval-tokens tokens per domain are never what Aioli measures
        aioli.observe_losses(step, *mt.heldout_losses(model, ds, aioli.heldout_tokens,
                                                      eval_max_tokens=args.eval_tokens))
    micro = [next(batches) for _ in range(args.grad_accum)]
    tokens = sum(mb["input_ids"][:, 1:].numel() for mb in micro)
    for group in opt.param_groups:
        group["lr"] = mt.lr_at(step, optim, args.steps)
    for mb in micro:  # the plain mean over the global batch: Aioli changes only what is drawn
        (mt.token_losses(model, mb["input_ids"]).sum() / tokens).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), optim.grad_clip)
    opt.step()
    opt.zero_grad(set_to_none=True)

print(" ".join(f"{d}={w:.3f}" for d, w in zip(ds.domains, aioli.mixture, strict=True)))
path = mt.write_weights(f"{args.out}/domain_weights.json", aioli.mixture, ds.domains)
print(f"the mixture at the end -> {path}")
