"""Progress a person can follow: a bar on a terminal, a log line every N seconds elsewhere.

A batch job or `mixtune run > log 2>&1` has no terminal, and a progress bar there is either
nothing or thousands of carriage returns; it gets a plain line instead
(`train: step 120/600 (20%), loss 2.3456, 13,277 tokens/s, ETA 4m10s`) every `every` seconds.
"""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger("mixtune.progress")

EVERY = 30.0
"""Default seconds between progress lines in a log."""


class Progress:
    def __init__(
        self,
        desc: str,
        total: int | None = None,
        *,
        initial: int = 0,
        unit: str = "it",
        every: float = EVERY,
        rate_unit: tuple[str, float] | None = None,
        show: bool = True,
        leave: bool = True,
    ):
        """`rate_unit=("tokens", 16384)` reports tokens/s at 16384 tokens per unit. `show=False`
        counts without printing (the ranks other than 0 under torchrun); `leave=False` erases the
        bar when closed (a pass nested in another bar's, such as an evaluation during training)."""
        self.desc, self.total, self.unit, self.every = desc, total, unit, every
        self.rate_unit, self.show = rate_unit, show
        self.n = self._start = initial
        self._t0 = self._last = time.monotonic()
        self._bar = None
        if show and sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=leave)

    def update(self, n: int = 1, **shown: float) -> None:
        """Advance by `n`; `shown` values (loss=2.3) appear beside the count."""
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
            if shown:
                self._bar.set_postfix({k: _fmt(v) for k, v in shown.items()}, refresh=False)
            return
        now = time.monotonic()
        if self.show and now - self._last >= self.every:
            self._last = now
            log.info("%s", self.line(now, shown))

    def line(self, now: float, shown: dict) -> str:
        count = f"{self.unit} {self.n:,}"
        if self.total:
            count += f"/{self.total:,} ({100 * self.n / self.total:.0f}%)"
        parts = [f"{self.desc}: {count}"] + [f"{k} {_fmt(v)}" for k, v in shown.items()]
        rate = (self.n - self._start) / max(now - self._t0, 1e-9)
        if self.rate_unit is not None:
            name, per = self.rate_unit
            parts.append(f"{rate * per:,.0f} {name}/s")
        else:
            parts.append(f"{rate:,.1f} {self.unit}/s")
        if self.total and rate > 0:
            parts.append(f"ETA {_duration((self.total - self.n) / rate)}")
        return ", ".join(parts)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _fmt(v) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"
