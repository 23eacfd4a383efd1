"""Where a model runs and in which precision: the options training and evaluation share (no torch
imported here; `mixtune.distributed` turns them into a device)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mixtune.schema import setting


def device_problem(device: str) -> str | None:
    if device in ("auto", "cpu", "cuda") or (device.startswith("cuda:") and device[5:].isdigit()):
        return None
    return "use auto, cpu, cuda or cuda:N"


@dataclass(kw_only=True)
class DeviceOptions:
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """auto: bf16 autocast on a GPU that supports it, else fp32."""
    device: str = setting("auto", check=device_problem, identity=False)
    """auto, cpu, cuda or cuda:N (under torchrun each process takes cuda:LOCAL_RANK)."""
