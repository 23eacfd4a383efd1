"""A datatrove task that makes one call: independent work (RegMix's proxy trainings) run on
mixtune's executors (`executors.run_calls`). Imports datatrove: imported only when tasks run."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from datatrove.pipeline.base import PipelineStep


class CallTask(PipelineStep):
    """Task `rank` calls `calls[rank]()`. The calls must pickle (spawned processes, Ray)."""

    name = "call"
    type = "🏃 - RUN"

    def __init__(self, calls: Sequence[Callable[[], None]], sharing: int,
                 setup: Callable[[], None] | None = None) -> None:
        """`sharing`: the tasks run at once on this machine; `setup`: called first in the task's
        process (a spawned one starts afresh: e.g. quieting datatrove's console logging)."""
        super().__init__()
        self.calls, self.sharing, self.setup = list(calls), sharing, setup

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        if self.setup is not None:
            self.setup()
        # The processes sharing this machine (distributed.setup gives each its share of the cores).
        os.environ["LOCAL_WORLD_SIZE"] = str(self.sharing)
        self.calls[rank]()
        return iter(())
