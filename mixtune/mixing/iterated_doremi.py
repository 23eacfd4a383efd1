"""Iterated DoReMi, the offline method: reference -> proxy -> ᾱ, repeated until ᾱ settles.

    round r:  round-r/reference   trained on α_ref (round 1: reference_weights, e.g. natural)
              round-r/proxy       a DoReMi proxy against it (doremi.py); its ᾱ is the result
              stop when ‖ᾱ − α_ref‖∞ < rounds.until (or after rounds.max), else α_ref = ᾱ

Reference and proxy have the same scale and steps (`proxy:` in the run config), as in the paper.
The last round's ᾱ is the `doremi` mixture; earlier rounds' are offered as `doremi-roundN`.
"""

from __future__ import annotations

import logging

import numpy as np

from mixtune import schema
from mixtune.mixing.base import METHODS, OfflineMethod, Proposal
from mixtune.mixing.static import StaticConfig
from mixtune.mixing.weights import as_dict, read_weights
from mixtune.records import RoundRecord

log = logging.getLogger(__name__)


@METHODS.register
class IteratedDoReMi(OfflineMethod):
    method = "doremi"

    def stage_names(self, cfg) -> list[str]:
        return [f"round-{r}/{s}" for r in range(1, cfg.max_rounds + 1) for s in ("reference", "proxy")]

    def mixture_names(self, cfg) -> list[str]:
        return [self.method] + [f"doremi-round{r}" for r in range(1, cfg.max_rounds)]

    def propose(self, ctx):
        cfg = ctx.cfg
        ref_weights = ctx.weights(cfg.reference_weights)
        rounds: list[RoundRecord] = []
        after: tuple[str, ...] = ()  # round r > 1 trains its reference on round r-1's result
        for r in range(1, cfg.max_rounds + 1):
            ref_file = ctx.write_weights(f"round-{r}/reference_weights.json", ref_weights)
            ref = yield ctx.train_stage(f"round-{r}/reference", StaticConfig(weights=str(ref_file)),
                                        cfg.proxy, deps=after)
            proxy_cfg = schema.replace(cfg.doremi, reference=str(ref))
            proxy = yield ctx.train_stage(f"round-{r}/proxy", proxy_cfg, cfg.proxy,
                                          deps=(f"round-{r}/reference",))
            avg = read_weights(proxy / "domain_weights.json", ctx.domains)
            linf = float(np.abs(avg - ref_weights).max())
            rounds.append(RoundRecord(r, as_dict(ref_weights, ctx.domains), as_dict(avg, ctx.domains),
                                      linf, f"round-{r}/reference", f"round-{r}/proxy"))
            log.info("round %d: ‖ᾱ − α_ref‖∞ = %.4f", r, linf)
            if cfg.tolerance is not None and linf < cfg.tolerance:
                break
            ref_weights, after = avg, (f"round-{r}/proxy",)
        earlier = {f"doremi-round{x.round}": _vector(x.doremi_weights, ctx.domains) for x in rounds[:-1]}
        return Proposal(avg, [f"round-{rounds[-1].round}/proxy"], earlier, {"rounds": rounds})


def _vector(weights: dict[str, float], domains: list[str]) -> np.ndarray:
    return np.array([weights[d] for d in domains])
