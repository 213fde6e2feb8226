"""One training run over one or several processes: the `accelerate.Accelerator` a run uses, the launch check (every
process needs a part of each micro-batch), the one-writer lock on an adapter, and waiting for the main process's files.

Which processes exist is chosen at launch (`python`, `accelerate launch`, `torchrun`), not here; see
docs/distributed.md. It does not train (see `loop.py`) and does not pick a GPU or load a model (see `quantization.py`).
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..core.cache import locked

# accelerate (and torch under it) is imported inside the functions: the CLI imports this module and must start fast.


class LaunchError(ValueError):
    """A launch this run cannot use (e.g. more processes than examples in a micro-batch); its message is one line."""


def _cpu_only() -> bool:
    """No GPU: processes talk over gloo (accelerate treats a launch as CPU processes only when told so)."""
    import torch

    return not torch.cuda.is_available()


def _check_world(state) -> None:
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched != state.num_processes:  # each process would train alone and all would write the same folders
        raise LaunchError(f"launched as {launched} processes but accelerate sees {state.num_processes}: start with "
                          "`accelerate launch` or `torchrun`, without a config that says otherwise")


def process_state():
    """accelerate's view of this process (rank, world size, device); one process when started without a launcher."""
    from accelerate import PartialState

    state = PartialState(cpu=_cpu_only())
    _check_world(state)
    return state


def make_accelerator(grad_accumulation: int):
    """The Accelerator of one run. Precision stays the run's `compute_dtype` (it is in the cache key): a launch config's
    mixed_precision is overridden; devices stay where the model was loaded (device_placement=False)."""
    from accelerate import Accelerator

    accelerator = Accelerator(gradient_accumulation_steps=grad_accumulation, mixed_precision="no",
                              device_placement=False, cpu=_cpu_only())
    _check_world(accelerator)
    return accelerator


def check_launch(batch_size: int, world: int) -> None:
    """Every process takes a part of each micro-batch of `batch_size` examples, so there can be at most that many."""
    if world > batch_size:
        raise LaunchError(f"{world} processes but batch_size={batch_size} examples per micro-batch: each process needs "
                          f"at least one; launch at most {batch_size} processes or raise batch_size")


@contextmanager
def one_writer(lock_path: str | os.PathLike) -> Iterator[None]:
    """One run at a time writes a given adapter. One process: the file lock. Several: the main process holds the lock,
    the others wait (barrier) until it has it, and all leave together once its writes are done."""
    state = process_state()
    if state.num_processes == 1:
        with locked(lock_path):
            yield
        return
    if state.is_main_process:
        with locked(lock_path):
            state.wait_for_everyone()
            yield
            state.wait_for_everyone()
    else:
        state.wait_for_everyone()
        yield
        state.wait_for_everyone()  # not before the main process has written what the caller will read


def wait_for_checkpoint(ckpt: Path, step: int, timeout: float = 60.0) -> bool:
    """Wait (no collective call: safe after an interrupt) until the main process's checkpoint reaches `step`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if json.loads((ckpt / "state.json").read_text())["step"] >= step:
                return True
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.1)
    return False
