"""The peak that MFU divides by: a known card's figure, or the best matmul rate measured."""

import torch

from mixtune.model import flops


def test_a_measured_peak_keeps_the_best_rate_and_is_retaken_minutes_apart(monkeypatch):
    rates = iter([60e9, 180e9, 120e9])  # the first taken while another process held a core
    clock = [1000.0]
    monkeypatch.setattr(flops, "_measured", {})
    monkeypatch.setattr(flops, "_matmul_rate", lambda device, dtype: next(rates))
    monkeypatch.setattr(flops.time, "monotonic", lambda: clock[0])
    assert flops.measured_matmul_flops("cpu", "None") == 60e9
    clock[0] += flops.REMEASURE_S - 1
    assert flops.measured_matmul_flops("cpu", "None") == 60e9  # not yet retaken
    clock[0] += 1
    assert flops.measured_matmul_flops("cpu", "None") == 180e9
    clock[0] += flops.REMEASURE_S
    assert flops.measured_matmul_flops("cpu", "None") == 180e9  # 120 measured: the best stays


def test_the_peak_is_given_or_measured():
    assert flops.peak_flops(torch.device("cpu"), None, given_tflops=2.0) == 2e12
    assert flops._matmul_rate("cpu", "None", n=64, repeats=1, trials=2) > 0

