"""`mixtune run`: the chain as stages (stage.py), run by a generic runner (runner.py) from a plan
(plan.py), on one process or relaunched under torchrun (launch.py)."""

from mixtune.pipeline.launch import run_pipeline

__all__ = ["run_pipeline"]
