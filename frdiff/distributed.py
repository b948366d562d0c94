"""Several processes for one measurement, through accelerate's process state.

    accelerate launch --num_processes 2 -m frdiff sweep ...      # GPUs, one process each
    torchrun --nproc_per_node 2 -m frdiff sweep ...               # CPU processes (gloo)

`processes()` is None in a plain single-process run, else accelerate's `PartialState` (CPU and
gloo where there is no CUDA). Work is a list of independent items (a sweep's settings, an
evaluation's batches, the tuner's candidate policies): each process takes a contiguous share
(`split_between_processes`), runs it, and `gather_object` puts the results back in order on
every process; the main process reports. Timing stays within a process (each row's baseline
and accelerated calls are interleaved in the process that measures the row); quality figures
do not depend on which process computed them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import torch


def processes():
    """accelerate's PartialState when launched with several processes, else None."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def count(state) -> int:
    return 1 if state is None else state.num_processes


def is_main(state) -> bool:
    return state is None or state.is_main_process


def device(state, requested: str | None) -> str | None:
    """A process's device: its own GPU when several processes share a CUDA machine."""
    if state is None or requested is None or not requested.startswith("cuda"):
        return requested
    return str(state.device)


def run_shared(state, items: Sequence, work: Callable[[Any], Any]) -> list:
    """`[work(item) for item in items]`, the items shared between the processes; every process
    gets the whole list back, in the items' order (processes with no share just wait)."""
    if state is None:
        return [work(item) for item in items]
    from accelerate.utils import gather_object

    indexed = list(enumerate(items))
    with state.split_between_processes(indexed) as mine:
        done = [(i, work(item)) for i, item in mine]
    gathered = gather_object(done)
    return [result for _, result in sorted(gathered, key=lambda pair: pair[0])]
