"""A DoReMi proxy trained by a plain PyTorch loop: mixtune's loader and DoReMi update, your loop.

    python examples/api_loop.py DATA REFERENCE_RUN OUT [--steps 200 --batch-size 32 --grad-accum 1]

With the same settings it gives the domain weights `mixtune doremi --data DATA --reference
REFERENCE_RUN --steps ... --seed 0` gives (the CLI's model, optimizer and schedule are used here).
"""

import argparse

import torch

import mixtune as mt

p = argparse.ArgumentParser()
p.add_argument("data"), p.add_argument("reference"), p.add_argument("out")
for flag, default in [("--steps", 200), ("--batch-size", 32), ("--grad-accum", 1), ("--seed", 0)]:
    p.add_argument(flag, type=int, default=default)
p.add_argument("--scale", default="tiny")
args = p.parse_args()

ds = mt.open_dataset(args.data)
model = mt.build_model(args.scale, ds.vocab_size, ds.seq_len, ds.eos_id, args.seed).train()
reference = mt.load_model(args.reference).eval().requires_grad_(False)
optim = mt.OptimConfig.for_scale(args.scale)  # the recipe of the scale (the paper's for tiny)
opt = mt.build_optimizer(model, optim)
batches = mt.DomainBatches(ds, "uniform", args.batch_size, seed=args.seed,
                           grad_accum=args.grad_accum, steps=args.steps)
doremi = mt.DoReMi(ds.domains)
loader = iter(torch.utils.data.DataLoader(batches, batch_size=None, num_workers=1))

for step in range(args.steps):
    micro = [next(loader) for _ in range(args.grad_accum)]
    with torch.no_grad():  # score the whole global batch first: α_t weights its loss
        for mb in micro:
            x = mb["input_ids"]
            doremi.add(mt.token_losses(model, x), mt.token_losses(reference, x), mb["domain_ids"])
    alpha = doremi.update()
    for group in opt.param_groups:
        group["lr"] = mt.lr_at(step, optim, args.steps)
    for mb in micro:
        doremi.loss(mt.token_losses(model, mb["input_ids"]), mb["domain_ids"]).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), optim.grad_clip)
    opt.step()
    opt.zero_grad(set_to_none=True)
    if step % 20 == 0 or step == args.steps - 1:
        print(step, " ".join(f"{d}={a:.3f}" for d, a in zip(ds.domains, alpha, strict=True)))

path = mt.write_weights(f"{args.out}/domain_weights.json", doremi.average, ds.domains)
print(f"average domain weights -> {path}")
