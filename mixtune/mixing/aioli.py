"""Aioli (Chen et al. 2024, "Aioli: A Unified Optimization Framework for Language Model Data
Mixing", arXiv 2411.05735): an online mixer that estimates the mixing law from the run itself.

The paper's linear dynamic mixing law says that training on mixture p for a while changes the
held-out loss of domain i by −Σ_j A_ij p_j. Aioli minimises the uniform average of the domains'
losses (mixtune's headline "average (uniform)" log-ppl) one round at a time. The run is cut into
rounds of `round_steps` steps; each round

1. LearnParams: `passes` sweeps over the k domains, in a seeded random order per sweep. For each
   domain j the run trains `sweep_steps` steps on the mixture perturbed towards j,

       w_j = (1 − ε)·u + ε·e_j                  (u uniform, e_j the one-hot of j)

   and the held-out loss of every domain i is measured before and after:
   β_ij += L_i(before) − L_i(after). With β averaged over the sweeps and W the matrix of rows
   w_j, the law β_i = Σ_l A_il W_jl gives the estimate A = β W⁻ᵀ.
2. The update, one exponentiated-gradient step on Σ_i L_i (the paper's Algorithm 1):

       A ← A − min(0, min A);  A ← A / ΣA       (scale-free: losses fall ever slower)
       p_j ∝ p_j · exp(η · Σ_i A_ij)            (computed in log space)

3. Hold: the rest of the round trains on p.

p starts at `init`: any weights spec (natural, uniform, a JSON file) or, in `mixtune run`, another
mixture of the run (`regmix`: its proposal, which Aioli then corrects online).
The held-out losses come from the loop (`OnlineMixer.wants_losses` / `observe_losses`, measured by
`mixtune/train/heldout.py` on text the final evaluation does not score). Everything the update
depends on is a pure function of the step and of the checkpointed state (p, the last A, the
round's sweep records), so a resumed run continues exactly, also mid-sweep, and every rank, with
any number of micro-batches, computes the same mixture from the same global losses.

Cost: the sweeps are ordinary training steps of the run (on perturbed mixtures); the extra compute
is the held-out forward passes, 1 + passes·k per round of heldout_tokens per domain, counted in
the metrics row as `domain_heldout_tokens` (cumulative, per domain; forward only, so about 2·N
FLOPs per token where a training token costs 6·N).

Where this differs from the paper's code (HazyResearch/aioli, `trainer/aioli_trainer.py`):

- The sweeps take a share `sweep_share` of each round, rounded to whole sweeps (at least one, and
  at least one step left for the hold); the code takes a number of sweeps (`--lp_rounds`).
- ε is the step from uniform towards e_j; the code's `--one_hot_factor` is the perturbed domain's
  share, ε + (1 − ε)/k (the same family of mixtures: the code's 0.625 for 2 domains is ε = 0.25,
  0.75 for 7 domains is ε ≈ 0.71).
- The order of the domains within a sweep is seeded by (round, sweep), not drawn from the global
  RNG: ranks agree and a resumed run repeats it.
- Held-out losses are token-weighted means over a fixed held-out slice of `heldout_tokens` per
  domain; the code averages per-sequence means over its whole validation set each time.
- Every update multiplies the mixture before it, the first one `init` (p^0); the code
  restarts the first dynamic round from uniform, so a prior mixture only shapes its first phase.
  Aioli here adjusts `init` from step 0; the code's restricted setting first trains on the prior
  for `--prior_steps` steps without sweeps (not offered here).
- No EMA of A (the code's optional `--ema`, which also replaces the multiplicative update by one
  from uniform) and no diagonal-only variant (`--aioli_diagonal`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from mixtune.data.weights import resolve_weights, spec_problem
from mixtune.errors import UserError
from mixtune.mixing.base import METHOD_OPTIONS, MIXERS, MixerContext, OnlineMixer
from mixtune.schema import at_least, in_range, parse, positive, setting

ETA = 1.0
"""The step size η of the paper's 7-domain SlimPajama runs (its 2- and 3-domain ones: 0.2, 0.1)."""


def init_problem(spec: str) -> str | None:
    """A weights spec, or the name of a method or `reference`: another mixture of the run
    (`check_run` checks that the run lists it)."""
    if spec == "reference" or METHOD_OPTIONS.get(spec) is not None:
        return None
    problem = spec_problem(spec)
    return problem and f"{problem}, or another mixture of the run (reference, a method's name)"


@MIXERS.register
@dataclass
class AioliConfig:
    """Aioli: re-estimates the mixing law from sweeps of perturbed mixtures every round, then
    moves the mixture by exponentiated gradient (Chen et al. 2024)."""

    method: ClassVar[str] = "aioli"
    main_model: ClassVar[bool] = True
    """Its models are the result (main models trained on the mixture it chooses), not proxies."""
    init: str = setting("uniform", check=init_problem)
    """The mixture before the first update (the paper: uniform): natural, uniform, temperature:T,
    unimax[:E], a JSON weights file, or in `mixtune run` another mixture of the run (reference,
    regmix, doremi, ...: the mixture it proposed, which Aioli then corrects during the run)."""
    eta: float = setting(ETA, check=positive)
    """Step size η of the exponentiated-gradient update p_j ∝ p_j·exp(η·Σ_i A_ij) (A normalised
    to sum 1; the paper: 0.1 to 1)."""
    round_steps: int = setting(250, check=at_least(2))
    """Steps per round: how often A is re-estimated and the mixture updated (the paper: 200-250)."""
    sweep_steps: int = setting(4, check=at_least(1))
    """Training steps on each perturbed mixture in a sweep (the paper: 4-10)."""
    sweep_share: float = setting(0.25, check=in_range(0, 1, lo_open=True, hi_open=True))
    """Share of each round spent in sweeps, rounded to whole sweeps over every domain (at least
    one); the rest of the round trains on the updated mixture."""
    epsilon: float = setting(0.5, check=in_range(0, 1, lo_open=True))
    """Perturbation size ε: a sweep towards domain j trains on (1 − ε)·uniform + ε·one-hot(j)."""
    heldout_tokens: int = setting(4096, check=at_least(1))
    """Held-out target tokens per domain whose loss is measured around each perturbation."""

    def check_run(self, run, label) -> None:
        """An `init` that is no weights spec must name another mixture of the run."""
        if spec_problem(self.init) is None:
            return
        others = [m for m in run.mixtures if m != self.method]
        if self.init not in others:
            raise UserError(
                f"{label('init')} {self.init!r}: not a weights spec ({spec_problem(self.init)}), "
                f"nor another mixture of this run's mixtures: ({', '.join(others)}); list it "
                "there or start from natural or uniform.")

    def build(self, ctx: MixerContext) -> AioliMixer:
        problem = spec_problem(self.init)
        if problem is not None:  # a mixture's name outside `mixtune run`, which passes its file
            raise UserError(
                f"aioli.init {self.init!r}: {problem}. Another method's mixture is known by name "
                "only inside `mixtune run`; elsewhere give its weights file (domain_weights.json).")
        ds = ctx.dataset
        init = resolve_weights(self.init, ds.domains, ds.counts("train"), ctx.budget_tokens)
        return AioliMixer(self, init)


# -- the arithmetic ----------------------------------------------------------------------------


def sweep_matrix(k: int, epsilon: float) -> np.ndarray:
    """[k, k] W: row j is the mixture of a perturbation towards domain j."""
    return (1.0 - epsilon) * np.full((k, k), 1.0 / k) + epsilon * np.eye(k)


def estimate(beta: np.ndarray, w: np.ndarray) -> np.ndarray:
    """A from β_ij = Σ_l A_il W_jl: the loss decrease of domain i over a perturbation towards j."""
    return np.linalg.solve(w, np.asarray(beta, np.float64).T).T


def normalise(a: np.ndarray) -> np.ndarray:
    """A shifted to non-negative entries and scaled to sum 1 (the code's `--aioli_normalize_A`):
    late in training losses fall slowly, and unscaled, η would matter less every round."""
    a = np.array(a, dtype=np.float64)
    if a.min() < 0:
        a -= a.min()
    total = a.sum()
    return a / total if total > 0 else a


def update(p: np.ndarray, a: np.ndarray, eta: float) -> np.ndarray:
    """p_j ∝ p_j·exp(η·Σ_i Â_ij), Â = normalise(A); in log space, so that no weight overflows and a
    domain at weight 0 stays there."""
    with np.errstate(divide="ignore"):
        logits = np.log(np.asarray(p, np.float64)) + eta * normalise(a).sum(axis=0)
    logits -= logits.max()
    new = np.exp(logits)
    return new / new.sum()


@dataclass(frozen=True)
class Schedule:
    """Where a step falls in its round: a pure function of the step, so that every rank and a
    resumed run agree without communication."""

    k: int
    round_steps: int
    sweep_steps: int
    passes: int

    @classmethod
    def of(cls, cfg: AioliConfig, k: int) -> Schedule:
        one = k * cfg.sweep_steps  # one sweep over every domain
        most = (cfg.round_steps - 1) // one  # at least one hold step per round
        if most < 1:
            raise UserError(
                f"aioli: round_steps {cfg.round_steps} is too short for one sweep over the {k} "
                f"domains ({k} × sweep_steps {cfg.sweep_steps} = {one} steps) and a step on the "
                f"updated mixture; set round_steps above {one} or lower sweep_steps.")
        return cls(k, cfg.round_steps, cfg.sweep_steps,
                   min(most, max(1, round(cfg.sweep_share * cfg.round_steps / one))))

    @property
    def perturbations(self) -> int:
        return self.passes * self.k

    @property
    def sweep_length(self) -> int:
        return self.perturbations * self.sweep_steps

    def locate(self, step: int) -> tuple[int, int]:
        """(round, offset of the step in its round)."""
        return divmod(step, self.round_steps)

    def perturbation(self, step: int) -> int | None:
        """The domain the step's mixture is perturbed towards (None: a hold step)."""
        rnd, offset = self.locate(step)
        if offset >= self.sweep_length:
            return None
        return self.domain(rnd, offset // self.sweep_steps)

    def domain(self, rnd: int, q: int) -> int:
        """The domain of perturbation q of round rnd: each sweep visits all, in a seeded order."""
        sweep, position = divmod(q, self.k)
        return int(np.random.default_rng([rnd, sweep]).permutation(self.k)[position])

    def measurement(self, step: int) -> int | None:
        """q when the held-out losses are measured before `step`: before perturbation q of its
        round, q = perturbations after the last; None between measurements."""
        _, offset = self.locate(step)
        if offset % self.sweep_steps or offset > self.sweep_length:
            return None
        return offset // self.sweep_steps


# -- the mixer ---------------------------------------------------------------------------------


@dataclass
class AioliState:
    """What a checkpoint keeps: the mixture, the last estimate, and the current round's sweep."""

    p: np.ndarray
    a: np.ndarray | None = None
    """The last round's raw estimate of A (None before the first)."""
    rnd: int = -1
    """The round whose sweep records follow (-1: none measured yet)."""
    measured: int = 0
    """Measurements taken in that round."""
    last: np.ndarray | None = None
    """The latest held-out losses of that round (None before its first)."""
    beta: np.ndarray | None = None
    """[k, k] summed loss decreases of that round, β_ij over perturbations towards j."""
    heldout: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """Held-out target tokens scored so far, per domain (the method's extra forward passes)."""

    def state_dict(self) -> dict:
        out = lambda x: None if x is None else np.asarray(x).tolist()  # noqa: E731
        return {"p": out(self.p), "a": out(self.a), "round": self.rnd, "measured": self.measured,
                "last": out(self.last), "beta": out(self.beta), "heldout": out(self.heldout)}

    @classmethod
    def from_state_dict(cls, s: dict) -> AioliState:
        arr = lambda x: None if x is None else np.array(x, dtype=np.float64)  # noqa: E731
        return cls(arr(s["p"]), arr(s["a"]), int(s["round"]), int(s["measured"]), arr(s["last"]),
                   arr(s["beta"]), arr(s["heldout"]))


class AioliMixer(OnlineMixer):
    """Sweeps perturbed mixtures at the start of each round, estimates A from the held-out losses
    around them, updates p and trains on p for the rest of the round. The loss is the plain mean
    over the global batch, as for a fixed mixture."""

    def __init__(self, cfg: AioliConfig, init: np.ndarray):
        k = len(init)
        self.eta, self.heldout_tokens = cfg.eta, cfg.heldout_tokens
        self.schedule = Schedule.of(cfg, k)
        self.w = sweep_matrix(k, cfg.epsilon)
        self.state = AioliState(np.asarray(init, np.float64), heldout=np.zeros(k))

    def sampling_weights(self, step: int) -> np.ndarray:
        j = self.schedule.perturbation(step)
        return self.state.p.copy() if j is None else self.w[j].copy()

    def loss_factors(self, scores, token_counts):
        import torch

        return torch.full_like(token_counts, 1.0 / float(token_counts.sum()), dtype=torch.float64)

    def wants_losses(self, step: int) -> bool:
        return self.schedule.measurement(step) is not None

    def observe_losses(self, step: int, losses: np.ndarray, token_counts: np.ndarray) -> None:
        q, (rnd, _) = self.schedule.measurement(step), self.schedule.locate(step)
        s, k = self.state, self.schedule.k
        if rnd != s.rnd:  # a new round's LearnParams
            s.rnd, s.measured, s.last, s.beta = rnd, 0, None, np.zeros((k, k))
        if q != s.measured:  # the loop measures every step asked, in order, resumed or not
            raise RuntimeError(f"aioli: held-out losses for measurement {q} of round {rnd}, "
                               f"expected measurement {s.measured}")
        losses = np.asarray(losses, np.float64)
        if q > 0:
            s.beta[:, self.schedule.domain(rnd, q - 1)] += s.last - losses
        s.last, s.measured = losses, q + 1
        s.heldout = s.heldout + np.asarray(token_counts, np.float64)
        if q == self.schedule.perturbations:  # the sweeps are done: estimate, update, hold
            s.a = estimate(s.beta / self.schedule.passes, self.w)
            s.p = update(s.p, s.a, self.eta)

    def metrics(self) -> dict[str, np.ndarray]:
        k = self.schedule.k
        gain = normalise(self.state.a).sum(axis=0) if self.state.a is not None else np.zeros(k)
        return {"domain_weights": self.state.p.copy(), "domain_gain": gain,
                "domain_heldout_tokens": self.state.heldout.copy()}

    def history(self) -> np.ndarray:
        return self.state.p.copy()

    def result(self) -> np.ndarray:
        """The mixture held at the end of the run (to start another run from, as `init`)."""
        return self.state.p.copy()

    def state_dict(self) -> dict:
        return self.state.state_dict()

    def load_state_dict(self, state: dict) -> None:
        s = AioliState.from_state_dict(state)
        if len(s.p) != self.schedule.k:
            raise ValueError(f"Aioli state has {len(s.p)} domains, this run {self.schedule.k}")
        self.state = s


# -- in a loop of your own -----------------------------------------------------------------------


class Aioli:
    """Aioli's mixture inside a training loop of your own (as `mixtune train --method aioli` and
    `mixtune run` use it). Per optimizer step, before drawing the step's batch:

        aioli = Aioli(dataset.domains, round_steps=250)
        batches = DomainBatches(dataset, aioli.weights, batch_size=32, steps=steps)
        it = iter(batches)   # iterated in this process (no DataLoader workers): the weights of a
                             # step depend on the losses observed before it
        for step in range(steps):
            if aioli.wants_losses(step):   # the model trained by steps 0..step-1, every rank
                aioli.observe_losses(step, *heldout_losses(model, dataset, aioli.heldout_tokens))
            for _ in range(grad_accum):
                mb = next(it); ... loss.backward()
            optimizer.step(); ...
        aioli.mixture                      # the mixture held at the end

    `state_dict()` / `load_state_dict()` checkpoint it (with the loader's own state, resume is
    exact, mid-sweep too). The loss is your plain mean over the batch: Aioli changes only what is
    sampled. Options as `mixtune train --method aioli --help` says (the `aioli:` section of a
    run); `init`: the starting mixture as weights over `domains` (default uniform).
    """

    def __init__(self, domains, *, init=None, eta: float = ETA, round_steps: int = 250,
                 sweep_steps: int = 4, sweep_share: float = 0.25, epsilon: float = 0.5,
                 heldout_tokens: int = 4096):
        self.domains = list(domains)
        k = len(self.domains)
        start = np.full(k, 1.0 / k) if init is None else np.asarray(init, np.float64)
        if start.shape != (k,) or start.min() < 0 or not start.sum() > 0:
            raise ValueError(f"init: {k} non-negative weights (one per domain) with a positive sum")
        cfg = parse(AioliConfig, dict(
            eta=eta, round_steps=round_steps, sweep_steps=sweep_steps, sweep_share=sweep_share,
            epsilon=epsilon, heldout_tokens=heldout_tokens), "Aioli")
        self.mixer = AioliMixer(cfg, start / start.sum())

    @property
    def heldout_tokens(self) -> int:
        return self.mixer.heldout_tokens

    def weights(self, step: int) -> np.ndarray:
        """The mixture to draw step `step`'s batch from (a sweep's perturbation, or the held one)."""
        return self.mixer.sampling_weights(step)

    def wants_losses(self, step: int) -> bool:
        return self.mixer.wants_losses(step)

    def observe_losses(self, step: int, losses, token_counts=None) -> None:
        """[k] held-out mean losses per domain of the model before `step` (and the tokens scored,
        counted as the method's extra forward passes)."""
        counts = np.zeros(len(self.domains)) if token_counts is None else token_counts
        self.mixer.observe_losses(step, np.asarray(losses, np.float64), np.asarray(counts))

    @property
    def mixture(self) -> np.ndarray:
        """The current mixture p (updated once per round, after its sweeps)."""
        return self.mixer.result()

    def state_dict(self) -> dict:
        return self.mixer.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.mixer.load_state_dict(state)
