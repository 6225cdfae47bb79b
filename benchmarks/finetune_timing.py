"""How the fine-tune benchmarks time `fine_tune` (shared by finetune_speed and finetune_cuda)."""

from __future__ import annotations

import time
from pathlib import Path

from plimsoll.training.finetune import fine_tune


def timed_fine_tune(base, pairs, params, work: Path, checkpoints: Path) -> tuple:
    """fine_tune, its whole time, and (like the plain loop's timer) the training steps only.

    The first step's share is estimated from the mean of the others; model load and
    checkpoint writes are left out.
    """
    step_times: list[float] = []
    start = time.perf_counter()
    result = fine_tune(base, pairs, params, work, checkpoints,
                       on_step=lambda *_: step_times.append(time.perf_counter()))
    seconds = time.perf_counter() - start
    steps = len(step_times)
    return result, seconds, (step_times[-1] - step_times[0]) * steps / max(steps - 1, 1)
