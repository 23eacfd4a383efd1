"""DoReMi's domain-weight update (Xie et al. 2023, Algorithm 1), as pure functions of numbers.

Per optimizer step `t`, from statistics of the whole global batch:

    λ_t[i]     = Σ_{j ∈ domain i} max(ℓ_θ(x_j) − ℓ_ref(x_j), 0) / |domain-i tokens|
                 (a domain absent from the batch keeps its previous λ)
    log α'_t   = log α_{t−1} + η·λ_t,  normalised with logsumexp
    α_t        = (1 − c)·softmax(log α'_t) + c/k
    proxy loss = Σ_i α_t[i] · (mean token loss of domain i)          (the paper's form)
    result     ᾱ = (1/T)·Σ_t α_t
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


def step(alpha, excess, eta: float = 1.0, smoothing: float = 1e-3):
    """One exponentiated-gradient step with smoothing: α_{t−1}, λ_t -> α_t.

    Takes and returns numpy arrays or torch tensors (the same kind as `alpha`); computed in
    float64 so that the update does not depend on the caller's precision.
    """
    is_torch = isinstance(alpha, torch.Tensor)
    a = alpha.detach().double().cpu().numpy() if is_torch else np.asarray(alpha, dtype=np.float64)
    lam = (
        excess.detach().double().cpu().numpy()
        if isinstance(excess, torch.Tensor)
        else np.asarray(excess, np.float64)
    )
    logits = np.log(a) + eta * lam
    logits -= logits.max()  # logsumexp normalisation: exp never overflows
    p = np.exp(logits)
    p /= p.sum()
    new = (1.0 - smoothing) * p + smoothing / len(a)
    if is_torch:
        return torch.as_tensor(new, dtype=alpha.dtype, device=alpha.device)
    return new


def excess_per_domain(
    excess_sum: np.ndarray, token_count: np.ndarray, previous: np.ndarray
) -> np.ndarray:
    """λ_t: mean clipped excess loss per domain; domains without tokens keep their previous λ."""
    excess_sum = np.asarray(excess_sum, np.float64)
    token_count = np.asarray(token_count, np.float64)
    present = token_count > 0
    lam = np.array(previous, dtype=np.float64, copy=True)
    lam[present] = excess_sum[present] / token_count[present]
    return lam


def proxy_loss_weights(
    alpha: torch.Tensor, token_count: torch.Tensor, sampling: torch.Tensor, normalization: str
) -> torch.Tensor:
    """Per-domain factors `f` such that the proxy loss is Σ_j f[d(j)]·ℓ_j over the global batch.

    - "domain" (the paper): Σ_i α_i · mean_i  ->  f_i = α_i / n_i  (0 for absent domains);
    - "token" (the reference code): Σ_j w_{d(j)} ℓ_j / Σ_j w_{d(j)} with w = α / sampling
      probability, i.e. f_i = w_i / Σ_k w_k n_k.
    `token_count` are the global batch's per-domain target-token counts (all ranks).
    """
    n = token_count.to(torch.float64)
    a = alpha.to(torch.float64)
    if normalization == "domain":
        return torch.where(n > 0, a / n.clamp(min=1), torch.zeros_like(a))
    if normalization == "token":
        w = a / sampling.to(torch.float64).clamp(min=1e-12)
        return w / (w * n).sum().clamp(min=1e-12)
    raise ValueError(f"unknown loss normalization {normalization!r}")


@dataclass
class DoReMiState:
    """What the proxy run carries from step to step (and checkpoints): α, Σα_t, T, last λ."""

    alpha: np.ndarray
    alpha_sum: np.ndarray
    steps: int
    last_excess: np.ndarray
    history: list = field(
        default_factory=list
    )  # not checkpointed: rows go to weights_history.jsonl

    @classmethod
    def uniform(cls, k: int) -> DoReMiState:
        return cls(np.full(k, 1.0 / k), np.zeros(k), 0, np.zeros(k))

    def update(self, excess_sum, token_count, eta: float, smoothing: float) -> np.ndarray:
        self.last_excess = excess_per_domain(excess_sum, token_count, self.last_excess)
        self.alpha = step(self.alpha, self.last_excess, eta, smoothing)
        self.alpha_sum = self.alpha_sum + self.alpha
        self.steps += 1
        return self.alpha

    @property
    def average(self) -> np.ndarray:
        """ᾱ = (1/T)·Σ_{t=1..T} α_t (uniform before the first step)."""
        if self.steps == 0:
            return self.alpha.copy()
        return self.alpha_sum / self.steps

    def state_dict(self) -> dict:
        return {
            "alpha": self.alpha.tolist(),
            "alpha_sum": self.alpha_sum.tolist(),
            "steps": self.steps,
            "last_excess": self.last_excess.tolist(),
        }

    @classmethod
    def from_state_dict(cls, s: dict) -> DoReMiState:
        return cls(
            np.array(s["alpha"]),
            np.array(s["alpha_sum"]),
            int(s["steps"]),
            np.array(s["last_excess"]),
        )
