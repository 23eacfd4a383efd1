"""DoReMi's domain-weight update (Xie et al. 2023, Algorithm 1), and the proxy run's online mixer.

Per optimizer step `t`, from statistics of the whole global batch:

    λ_t[i]     = Σ_{j ∈ domain i} max(ℓ_θ(x_j) − ℓ_ref(x_j), 0) / |domain-i tokens|
                 (a domain absent from the batch keeps its previous λ)
    log α'_t   = log α_{t−1} + η·λ_t,  normalised with logsumexp
    α_t        = (1 − c)·softmax(log α'_t) + c/k
    proxy loss = Σ_i α_t[i] · (mean token loss of domain i)          (the paper's form)
    result     ᾱ = (1/T)·Σ_t α_t

The update (`step`, `excess_per_domain`, `proxy_loss_weights`, `DoReMiState`) is pure arithmetic
on numbers. `DoReMiMixer` wires it into the training step: it owns the frozen reference model,
scores each micro-batch's excess loss, and turns α_t into the proxy's loss factors.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np

from mixtune.errors import UserError
from mixtune.mixing.base import MIXERS, MixerContext, OnlineMixer
from mixtune.mixing.static import resolve_weights, spec_problem
from mixtune.schema import in_range, positive, setting


def step(alpha, excess, eta: float = 1.0, smoothing: float = 1e-3):
    """One exponentiated-gradient step with smoothing: α_{t−1}, λ_t -> α_t.

    Takes and returns numpy arrays or torch tensors (the same kind as `alpha`); computed in
    float64 so that the update does not depend on the caller's precision.
    """
    a, is_torch = _float64(alpha)
    lam, _ = _float64(excess)
    logits = np.log(a) + eta * lam
    logits -= logits.max()  # logsumexp normalisation: exp never overflows
    p = np.exp(logits)
    p /= p.sum()
    new = (1.0 - smoothing) * p + smoothing / len(a)
    if is_torch:
        import torch

        return torch.as_tensor(new, dtype=alpha.dtype, device=alpha.device)
    return new


def _float64(x) -> tuple[np.ndarray, bool]:
    """A float64 numpy copy of an array or tensor, and whether it was a tensor."""
    if isinstance(x, (np.ndarray, list, tuple, float, int)):
        return np.asarray(x, dtype=np.float64), False
    return x.detach().double().cpu().numpy(), True  # a torch tensor


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


def proxy_loss_weights(alpha, token_count, sampling, normalization: str):
    """Per-domain factors `f` such that the proxy loss is Σ_j f[d(j)]·ℓ_j over the global batch.

    - "domain" (the paper): Σ_i α_i · mean_i  ->  f_i = α_i / n_i  (0 for absent domains);
    - "token" (the reference code): Σ_j w_{d(j)} ℓ_j / Σ_j w_{d(j)} with w = α / sampling
      probability, i.e. f_i = w_i / Σ_k w_k n_k.
    `token_count` are the global batch's per-domain target-token counts (all ranks).
    """
    import torch

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


@MIXERS.register
@dataclass
class DoReMiConfig:
    """A DoReMi proxy: trained with DRO against a frozen reference; its ᾱ is the result."""

    method: ClassVar[str] = "doremi"
    reference: str | None = None
    """Reference run folder (mixtune train) or its final/: the frozen model whose per-token loss
    the proxy's is measured against."""
    proxy_sampling: str = setting("uniform", check=spec_problem)
    """How the proxy samples domains (the paper: uniform): natural, uniform, temperature:T or a
    JSON weights file."""
    eta: float = setting(1.0, check=positive)
    """Step size η of the domain-weight update (the paper: 1)."""
    smoothing: float = setting(1e-3, check=in_range(0, 1, hi_open=True))
    """Share c of the uniform distribution mixed into the weights (the paper: 1e-3)."""
    loss_normalization: Literal["domain", "token"] = "domain"
    """domain: Σ α_i · mean loss of domain i (the paper); token: the reference code's
    token-weighted form."""

    def validate(self, label) -> None:
        if self.reference is None:
            raise UserError(f"{label('reference')}: required: the reference run to measure against.")

    def build(self, ctx: MixerContext) -> DoReMiMixer:
        return DoReMiMixer(self, ctx)


class DoReMiMixer(OnlineMixer):
    """Samples `proxy_sampling`; weights each domain's loss by α_t, updated from the excess loss
    of the proxy over the frozen reference on the whole global batch (Algorithm 1)."""

    scores_batch = True

    def __init__(self, cfg: DoReMiConfig, ctx: MixerContext):
        ds = ctx.dataset
        self.cfg, self.amp = cfg, ctx.autocast_dtype
        self.sampling = resolve_weights(cfg.proxy_sampling, ds.domains, ds.counts("train"))
        self.state = DoReMiState.uniform(len(ds.domains))
        self.reference = load_reference(Path(cfg.reference), ds, ctx.device)

    def sampling_weights(self, step: int) -> np.ndarray:
        return self.sampling

    def score(self, x, token_losses, domain_ids):
        import torch

        from mixtune.model.loss import per_domain_sum
        from mixtune.model.loss import token_losses as losses_of

        with torch.no_grad():
            ref = losses_of(self.reference, x, self.amp)
        excess = (token_losses - ref).clamp_min(0)
        return per_domain_sum(excess, domain_ids, len(self.sampling))

    def loss_factors(self, scores, token_counts):
        import torch

        counts = token_counts.cpu().double()
        alpha = self.state.update(scores.cpu().numpy(), counts.numpy(), self.cfg.eta, self.cfg.smoothing)
        return proxy_loss_weights(
            torch.as_tensor(alpha), counts, torch.as_tensor(self.sampling), self.cfg.loss_normalization
        )

    def metrics(self) -> dict[str, np.ndarray]:
        return {"domain_excess": self.state.last_excess, "domain_weights": self.state.alpha}

    def history(self) -> np.ndarray:
        return self.state.alpha

    def result(self) -> np.ndarray:
        return self.state.average

    def state_dict(self) -> dict:
        return self.state.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.state = DoReMiState.from_state_dict(state)


def load_reference(ref: Path, dataset, device):
    """The frozen reference model of `ref` (a run folder or its final/), checked against the
    dataset's tokenizer: per-token losses of two models are comparable only on the same ids."""
    from mixtune.model.build import final_dir, load_model, same_tokenizer

    final = final_dir(ref)
    if final is None:
        raise UserError(
            f"--reference {ref}: no trained model there (expected {ref}/final/config.json). Train the "
            f"reference first: mixtune train --data {dataset.path} --weights natural --out {ref} ..."
        )
    if not same_tokenizer(final, dataset):
        raise UserError(
            f"--reference {ref}: its tokenizer differs from the dataset's ({dataset.path}/tokenizer); "
            "the per-token losses would not be comparable. Train the reference on this dataset."
        )
    model = load_model(final).to(device)
    model.eval().requires_grad_(False)
    return model
