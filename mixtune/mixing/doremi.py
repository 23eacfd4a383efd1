"""DoReMi's domain-weight update (Xie et al. 2023, Algorithm 1), and the proxy run's online mixer.

Per optimizer step `t`, from statistics of the whole global batch:

    λ_t[i]     = Σ_{j ∈ domain i} max(ℓ_θ(x_j) − ℓ_ref(x_j), 0) / |domain-i tokens|
                 (a domain absent from the batch keeps its previous λ)
    log α'_t   = log α_{t−1} + η·λ_t,  normalised with logsumexp
    α_t        = (1 − c)·softmax(log α'_t) + c/k
    proxy loss = Σ_i α_t[i] · (mean token loss of domain i)          (the paper's form)
    result     ᾱ = (1/T)·Σ_t α_t

The update (`step`, `excess_per_domain`, `proxy_loss_weights`, `DoReMiState`) is pure arithmetic
on numbers. `DoReMi` applies it to per-token losses inside any training loop (the public API: the
CLI, the transformers Trainer and a loop of your own all go through it). `DoReMiMixer` wires it into
mixtune's training step: it owns the frozen reference model and scores each micro-batch with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np

from mixtune.data.weights import resolve_weights, spec_problem
from mixtune.errors import UserError
from mixtune.mixing.base import MIXERS, MixerContext, OnlineMixer
from mixtune.schema import in_range, positive, setting

if TYPE_CHECKING:
    import torch

ETA = 1.0
"""The paper's step size η of the domain-weight update (its 280M proxies; smaller suits tiny ones,
see the README's DoReMi study): the default of the CLI, the YAML, `DoReMi` and the Trainer."""
SMOOTHING = 1e-3
"""The paper's share c of the uniform distribution mixed into the weights."""


def step(alpha, excess, eta: float = ETA, smoothing: float = SMOOTHING):
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


class DoReMi:
    """DoReMi's domain weights inside a training loop of your own. Per optimizer step:

        for x, d in micro_batches:                   # this process's share of the global batch
            with torch.no_grad():
                doremi.add(token_losses(proxy, x), token_losses(reference, x), d)
        alpha = doremi.update()                      # sums over micro-batches and ranks -> α_t
        for x, d in micro_batches:
            doremi.loss(token_losses(proxy, x), d).backward()
        optimizer.step(); ...
        doremi.average                               # ᾱ: the mixture to train the large model on

    The excess loss and token counts of every micro-batch are summed, and under torch.distributed
    all-reduced, before α_t is computed: the weights depend only on the global batch, not on how it
    is split into ranks and micro-batches. α_t is known before the first backward, so every
    micro-batch of step t is weighted with it (the reference code updates after the last
    micro-batch's forward: the first k−1 of k micro-batches are weighted with α_{t−1}).
    With one micro-batch, the training forward can serve as the scoring one: `add` the detached
    losses, `update`, then `loss` the same losses.
    """

    def __init__(
        self,
        domains: Sequence[str],
        *,
        eta: float = ETA,
        smoothing: float = SMOOTHING,
        loss_normalization: Literal["domain", "token"] = "domain",
        sampling: np.ndarray | None = None,
        world_size: int | None = None,
    ):
        """`domains`: the names, in the order of the loader's domain ids. `eta`, `smoothing`,
        `loss_normalization`: as `mixtune doremi --help` says. `sampling`: the proxy's sampling
        weights (default uniform; used by the "token" normalization only). `world_size`: the
        data-parallel processes averaging gradients (default: torch.distributed's, else 1)."""
        k = len(domains)
        if k == 0:
            raise ValueError("DoReMi needs at least one domain")
        self.domains = list(domains)
        self.eta, self.smoothing, self.loss_normalization = eta, smoothing, loss_normalization
        if loss_normalization not in ("domain", "token"):
            raise ValueError(f"loss_normalization {loss_normalization!r}: domain or token")
        self.sampling = np.full(k, 1.0 / k) if sampling is None else np.asarray(sampling, np.float64)
        self.state = DoReMiState.uniform(k)
        self._world_size = world_size
        self._excess = self._tokens = None  # this step's sums, before update()
        self.factors: torch.Tensor | None = None
        """[k] float64 per-domain loss factors of the current step (see `proxy_loss_weights`)."""

    @property
    def weights(self) -> np.ndarray:
        """α_t: the current domain weights (uniform before the first update)."""
        return self.state.alpha.copy()

    @property
    def average(self) -> np.ndarray:
        """ᾱ = (1/T)·Σ_t α_t: DoReMi's result."""
        return self.state.average

    @property
    def excess(self) -> np.ndarray:
        """λ_t: the last step's mean clipped excess loss per domain."""
        return self.state.last_excess.copy()

    @property
    def steps(self) -> int:
        return self.state.steps

    def add(self, losses, ref_losses, domain_ids, mask=None) -> None:
        """Score one micro-batch: `losses` and `ref_losses` [b, T] per-token losses of the proxy
        and the reference on the same tokens, `domain_ids` [b], `mask` [b, T] (optional: 1 for
        target tokens, 0 for padding)."""
        excess, counts = excess_sums(losses.detach(), ref_losses, domain_ids, len(self.domains), mask)
        if self._excess is None:
            self._excess, self._tokens = excess, counts
        else:
            self._excess += excess.to(self._excess.device)
            self._tokens += counts.to(self._tokens.device)

    def update(self) -> np.ndarray:
        """α_t from everything `add`ed since the last update, summed over all ranks (one
        all-reduce); sets the loss factors. Call once per optimizer step, on every rank."""
        import torch

        from mixtune.distributed import all_reduce_sum

        if self._excess is None:
            raise RuntimeError("DoReMi.update(): no micro-batch was added since the last update")
        stats = torch.cat([self._excess, self._tokens])
        all_reduce_sum(stats)
        k = len(self.domains)
        self._excess = self._tokens = None
        return self.update_from_sums(stats[:k], stats[k:])

    def update_from_sums(self, excess_sums, token_counts) -> np.ndarray:
        """α_t from global per-domain sums (what `update` does after its all-reduce)."""
        import torch

        counts = torch.as_tensor(token_counts).detach().cpu().double()
        excess = torch.as_tensor(excess_sums).detach().cpu().double()
        alpha = self.state.update(excess.numpy(), counts.numpy(), self.eta, self.smoothing)
        self.factors = proxy_loss_weights(
            torch.as_tensor(alpha), counts, torch.as_tensor(self.sampling), self.loss_normalization
        )
        return alpha.copy()

    def loss(self, losses, domain_ids, mask=None):
        """The loss to backpropagate for one micro-batch (`losses` [b, T] with gradients).

        Summed over the micro-batches of the step it is this process's share of the proxy
        objective Σ_j f[d(j)]·ℓ_j, times the world size: data parallelism (DDP, FSDP) averages
        gradients over ranks, and the average of world_size × shares is the global objective's
        gradient, exactly as in one process. Do not divide it by the accumulation steps either."""
        import torch

        if self.factors is None:
            raise RuntimeError("DoReMi.loss(): call update() first (the factors depend on the batch)")
        f = self.factors.to(device=losses.device, dtype=torch.float32)
        if mask is not None:
            losses = losses * mask
        return (losses * f[domain_ids][:, None]).sum() * self.world_size

    @property
    def world_size(self) -> int:
        if self._world_size is not None:
            return self._world_size
        import torch.distributed as dist

        return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1

    def state_dict(self) -> dict:
        """α_t, Σα_t, T and λ_t: with them a resumed run continues the weights exactly."""
        return self.state.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.state = DoReMiState.from_state_dict(state)
        if len(self.state.alpha) != len(self.domains):
            raise ValueError(
                f"DoReMi state has {len(self.state.alpha)} domains, this run {len(self.domains)}"
            )


def excess_sums(losses, ref_losses, domain_ids, k: int, mask=None):
    """[k] sums of the clipped excess loss max(ℓ − ℓ_ref, 0), and [k] target-token counts, by the
    domain of each row (float64)."""
    import torch

    from mixtune.model.loss import per_domain_sum

    excess = (losses - ref_losses.to(losses.device)).clamp_min(0)
    if mask is None:
        ones = torch.ones(losses.shape[0], dtype=torch.float64, device=losses.device)
        counts = torch.zeros(k, dtype=torch.float64, device=losses.device).index_add_(
            0, domain_ids, ones * losses.shape[1]
        )
    else:
        mask = mask.to(losses.dtype)
        excess = excess * mask
        counts = per_domain_sum(mask, domain_ids, k)
    return per_domain_sum(excess, domain_ids, k), counts


@MIXERS.register
@dataclass
class DoReMiConfig:
    """A DoReMi proxy: trained with DRO against a frozen reference; its ᾱ is the result."""

    method: ClassVar[str] = "doremi"
    reference: str | None = None
    """Reference run folder (mixtune train) or its final/: the frozen model whose per-token loss
    the proxy's is measured against."""
    proxy_sampling: str = setting("uniform", check=spec_problem)
    """How the proxy samples domains (the paper: uniform): natural, uniform, temperature:T,
    unimax[:E] (for the proxy's own token budget) or a JSON weights file."""
    eta: float = setting(ETA, check=positive)
    """Step size η of the domain-weight update (the paper: 1)."""
    smoothing: float = setting(SMOOTHING, check=in_range(0, 1, hi_open=True))
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
        self.amp = ctx.autocast_dtype
        self.sampling = resolve_weights(cfg.proxy_sampling, ds.domains, ds.counts("train"),
                                        ctx.budget_tokens)
        self.doremi = DoReMi(ds.domains, eta=cfg.eta, smoothing=cfg.smoothing,
                             loss_normalization=cfg.loss_normalization, sampling=self.sampling)
        self.reference = load_reference(Path(cfg.reference), ds, ctx.device)

    def sampling_weights(self, step: int) -> np.ndarray:
        return self.sampling

    def score(self, x, token_losses, domain_ids):
        import torch

        from mixtune.model.loss import token_losses as losses_of

        with torch.no_grad():
            ref = losses_of(self.reference, x, self.amp)
        return excess_sums(token_losses, ref, domain_ids, len(self.sampling))[0]

    def loss_factors(self, scores, token_counts):
        self.doremi.update_from_sums(scores, token_counts)
        return self.doremi.factors

    def metrics(self) -> dict[str, np.ndarray]:
        return {"domain_excess": self.doremi.excess, "domain_weights": self.doremi.weights}

    def history(self) -> np.ndarray:
        return self.doremi.weights

    def result(self) -> np.ndarray:
        return self.doremi.average

    def state_dict(self) -> dict:
        return self.doremi.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.doremi.load_state_dict(state)


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
