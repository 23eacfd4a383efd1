"""Would a swarm train faster as one batched model? G `tiny` proxies one after another (today's
stages: G transformers models, each its own forward/backward/clip/AdamW step) against the same G
proxies stacked into one grouped model (every weight [G, ...]; batched matmuls, one attention call
over G·B sequences, one loss, per-proxy gradient clipping, one AdamW over the stacked weights, which
is elementwise and so the same as G optimisers).

    python benchmarks/grouped_proxies.py [--groups 4 16] [--threads 1 2] [--compile]
        [--batch-size 16] [--seq-len 128] [--vocab 256] [--steps 5] [--device cpu|cuda]

Training-step time only (no data loading, evaluation or files): what batching can change. The
grouped forward is checked against the transformers model first (max abs difference of the
logits of the last proxy, printed). `grouped/seq` < 1 is a gain. `--compile` compiles the grouped forward
(torch.compile; its compile time is printed, not counted). On a GPU both run under bf16 autocast,
as training does there.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch
import torch.nn.functional as F

from mixtune.model.build import build_model


def stack(models) -> dict[str, torch.nn.Parameter]:
    """The proxies' weights stacked on a leading group dimension; q/k/v and gate/up fused, as one
    matmul each."""
    def stacked(tensors):
        return torch.nn.Parameter(torch.stack([t.detach() for t in tensors]).contiguous())

    w = {"embed": stacked(m.model.embed_tokens.weight for m in models),
         "norm": stacked(m.model.norm.weight for m in models)}
    for i in range(models[0].config.num_hidden_layers):
        layers = [m.model.layers[i] for m in models]
        attn, mlp = [x.self_attn for x in layers], [x.mlp for x in layers]
        w[f"{i}.norm1"] = stacked(x.input_layernorm.weight for x in layers)
        w[f"{i}.qkv"] = stacked(torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight])
                                for a in attn)
        w[f"{i}.o"] = stacked(a.o_proj.weight for a in attn)
        w[f"{i}.norm2"] = stacked(x.post_attention_layernorm.weight for x in layers)
        w[f"{i}.gate_up"] = stacked(torch.cat([f.gate_proj.weight, f.up_proj.weight]) for f in mlp)
        w[f"{i}.down"] = stacked(f.down_proj.weight for f in mlp)
    return w


def rms_norm(h, weight, eps):
    return h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps) * weight[:, None, :]


def rotate_half(x):
    a, b = x.chunk(2, -1)
    return torch.cat((-b, a), -1)


def grouped_logits(w: dict, x: torch.Tensor, config) -> torch.Tensor:
    """[G, B, T, V] logits of the G stacked Llama proxies (tied embeddings, rotary, SwiGLU, RMSNorm:
    the `tiny` scale's block) for [G, B, T] token ids."""
    g, b, t = x.shape
    d, heads, eps = config.hidden_size, config.num_attention_heads, config.rms_norm_eps
    hd = d // heads
    embed = w["embed"]  # [G, V, d]: proxy i's token j is row i·V + j of the flattened table
    offset = torch.arange(g, device=x.device)[:, None, None] * embed.shape[1]
    h = embed.reshape(-1, d)[(x + offset).reshape(g, b * t)]
    inv_freq = 1.0 / config.rope_parameters["rope_theta"] ** (
        torch.arange(0, hd, 2, device=x.device, dtype=torch.float32) / hd)
    angles = torch.outer(torch.arange(t, device=x.device, dtype=torch.float32), inv_freq)
    cos, sin = torch.cat((angles, angles), -1).cos(), torch.cat((angles, angles), -1).sin()
    for i in range(config.num_hidden_layers):
        qkv = torch.bmm(rms_norm(h, w[f"{i}.norm1"], eps), w[f"{i}.qkv"].transpose(1, 2))
        q, k, v = qkv.view(g * b, t, 3, heads, hd).permute(2, 0, 3, 1, 4)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        h = h + torch.bmm(o.transpose(1, 2).reshape(g, b * t, d), w[f"{i}.o"].transpose(1, 2))
        gate, up = torch.bmm(rms_norm(h, w[f"{i}.norm2"], eps),
                             w[f"{i}.gate_up"].transpose(1, 2)).chunk(2, -1)
        h = h + torch.bmm(F.silu(gate) * up, w[f"{i}.down"].transpose(1, 2))
    return torch.bmm(rms_norm(h, w["norm"], eps), embed.transpose(1, 2)).view(g, b, t, -1)


def clip_per_proxy(params, max_norm: float) -> None:
    """Each proxy's gradient clipped to `max_norm` by its own norm, as its own run would be."""
    norms = torch.stack([p.grad.flatten(1).pow(2).sum(1) for p in params]).sum(0).sqrt()
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for p in params:
        p.grad.mul_(scale.view(-1, *[1] * (p.dim() - 1)))


def timed(step, steps: int) -> float:
    step()  # warm-up
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return (time.perf_counter() - start) / steps


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def compare(groups: int, args, device: torch.device) -> tuple[float, float, float]:
    """(sequential s/step, grouped s/step, max abs logit difference) for `groups` proxies."""
    v, t = args.vocab, args.seq_len
    models = [build_model("tiny", v, t, 0, seed).to(device) for seed in range(groups)]
    config = models[0].config
    x = torch.randint(0, v, (groups, args.batch_size, t + 1), device=device)
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    weights = stack(models)
    with torch.no_grad(), amp:
        diff = (grouped_logits(weights, x[:, :, :-1], config)[-1].float()
                - models[-1](input_ids=x[-1, :, :-1]).logits.float()).abs().max().item()

    optimisers = [torch.optim.AdamW(m.parameters(), lr=1e-3) for m in models]

    def sequential():
        for i, m in enumerate(models):
            with amp:
                logits = m(input_ids=x[i, :, :-1], use_cache=False).logits
            F.cross_entropy(logits.float().flatten(0, 1), x[i, :, 1:].flatten()).backward()
            torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
            optimisers[i].step()
            optimisers[i].zero_grad(set_to_none=True)

    forward = grouped_logits
    if args.compile:
        forward = torch.compile(grouped_logits, dynamic=False)
    params = list(weights.values())
    optimiser = torch.optim.AdamW(params, lr=1e-3)

    def grouped():
        with amp:
            logits = forward(weights, x[:, :, :-1], config)
        losses = F.cross_entropy(logits.float().flatten(0, 2), x[:, :, 1:].flatten(),
                                 reduction="none").view(groups, -1).mean(1)
        losses.sum().backward()  # proxies share no weight: each gets its own mean's gradient
        clip_per_proxy(params, 1.0)
        optimiser.step()
        optimiser.zero_grad(set_to_none=True)

    if args.compile:
        start = time.perf_counter()
        grouped()
        print(f"  (compile: {time.perf_counter() - start:.1f} s)")
    return timed(sequential, args.steps), timed(grouped, args.steps), diff


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--groups", type=int, nargs="+", default=[4, 16])
    ap.add_argument("--threads", type=int, nargs="+", default=[os.cpu_count() or 1])
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--vocab", type=int, default=256)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--compile", action="store_true", help="torch.compile the grouped forward")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    gpu = torch.cuda.get_device_name() if device.type == "cuda" else "no GPU"
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {gpu}; tiny, batch {args.batch_size} x {args.seq_len}, "
          f"vocab {args.vocab}, {args.steps} timed steps{', compiled' if args.compile else ''}\n")
    print(f"{'G':>3} {'threads':>7} {'seq s/step':>11} {'grouped':>9} {'grouped/seq':>12} "
          f"{'logit diff':>11}")
    for threads in args.threads:
        torch.set_num_threads(threads)
        for groups in args.groups:
            seq, grouped, diff = compare(groups, args, device)
            print(f"{groups:>3} {threads:>7} {seq:>11.3f} {grouped:>9.3f} {grouped / seq:>12.2f} "
                  f"{diff:>11.2g}", flush=True)


if __name__ == "__main__":
    main()
