"""Training FLOPs per token and the device's peak, for model FLOPs utilisation (MFU).

MFU = achieved model FLOP/s / peak FLOP/s, where the model FLOPs are those of training the model
itself (6·N per token plus attention), not of extra work a method adds (a DoReMi proxy's reference
forward lowers its MFU: the cost is real and shows). The peak is given (`--peak-tflops`), a known
GPU's dense bf16 figure, or the rate of a large matmul measured on this device in the training
dtype (on a CPU, the only honest peak there is).
"""

from __future__ import annotations

import math
import time
from functools import cache

from mixtune.model.scales import get_scale, matmul_params

# Dense (no sparsity) bf16 tensor-core peaks from the vendors' data sheets, in FLOP/s.
KNOWN_PEAKS = {
    "H200": 989e12,
    "H100": 989e12,  # SXM; the PCIe card's is 756e12
    "A100": 312e12,
    "L40S": 362e12,
    "A10G": 125e12,
    "L4": 121e12,
}


def flops_per_token(scale: str, vocab_size: int, seq_len: int) -> float:
    """Training FLOPs per token: 6·N for the matmuls plus 12·L·d·T for attention (PaLM, appendix B)."""
    s = get_scale(scale)
    return 6 * matmul_params(scale, vocab_size) + 12 * s.layers * s.d_model * seq_len


def h100_hours(scale: str, vocab_size: int, tokens: int, seq_len: int, mfu: float) -> float:
    """Hours of one H100 training `tokens` at `mfu` of its dense bf16 peak (`mixtune scales`)."""
    return tokens * flops_per_token(scale, vocab_size, seq_len) / (mfu * KNOWN_PEAKS["H100"]) / 3600


def peak_flops(device, autocast_dtype, given_tflops: float | None = None) -> float:
    """The FLOP/s that MFU divides by (see the module docstring)."""
    if given_tflops:
        return given_tflops * 1e12
    import torch

    if device.type == "cuda" and autocast_dtype is torch.bfloat16:
        peak = _card_peak(str(device))
        if peak:
            return peak
    return measured_matmul_flops(str(device), str(autocast_dtype))


@cache  # the loop asks at every step: one driver call per device, not one per step
def _card_peak(device: str) -> float | None:
    """A known card's data-sheet bf16 peak, None for another card."""
    import torch

    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in KNOWN_PEAKS.items() if key in name), None)


REMEASURE_S = 300.0
"""How often a long process retakes a measured peak, keeping the best it has seen."""
_measured: dict[tuple[str, str], tuple[float, float]] = {}  # (device, dtype) -> (rate, taken at)


def measured_matmul_flops(device: str, dtype: str) -> float:
    """The best matmul rate this process has measured on `device` in `dtype`, retaken every
    REMEASURE_S seconds. On a shared CPU a timing taken while another process holds a core reads
    a third of the rate, and every MFU after it then reads 2-3× too high (the mixture study's
    `small` runs logged MFU 1.1): the best of several timings, and of timings minutes apart,
    is the machine's rate."""
    rate, taken = _measured.get((device, dtype), (0.0, -math.inf))
    now = time.monotonic()
    if now - taken >= REMEASURE_S:
        rate = max(rate, _matmul_rate(device, dtype))
        _measured[(device, dtype)] = (rate, now)
    return rate


def _matmul_rate(device: str, dtype: str, n: int = 1024, repeats: int = 2,
                 trials: int = 5) -> float:
    """The best of `trials` timings of `repeats` n×n matmuls (~0.1 s on a laptop CPU)."""
    import torch

    dt = torch.bfloat16 if dtype == "torch.bfloat16" else torch.float32
    # Constant inputs: random ones would draw from the global RNG and change the training run.
    a = torch.full((n, n), 0.5, device=device, dtype=dt)
    b = torch.full((n, n), 0.25, device=device, dtype=dt)
    (a @ b).sum().item()  # warm-up; .item() waits for the device
    best = 0.0
    for _ in range(trials):
        t = time.perf_counter()
        for _ in range(repeats):
            c = a @ b
        c.sum().item()
        best = max(best, 2 * n**3 * repeats / (time.perf_counter() - t))
    return best
