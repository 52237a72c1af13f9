"""Training on several processes (torchrun) and stopping it cleanly: the process group, agreement among
the processes, and the signals that ask a run to stop (every process at the same iteration)."""

from __future__ import annotations

import contextlib
import os
import signal
import threading

import torch


class StopFlag:
    """SIGINT / SIGTERM ask the loop to stop after the current iteration and save a checkpoint."""

    def __init__(self):
        self.signal = None
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signal is not None:  # a second Ctrl-C: stop at once
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def distributed(device: torch.device):
    """Yield (rank, local rank, world size) under torchrun, else (0, 0, 1). A process group this
    starts (NCCL for CUDA, gloo otherwise) is destroyed on the way out, whatever happens."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    started = world > 1 and not torch.distributed.is_initialized()
    if started:
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")), world
    finally:
        if started:
            torch.distributed.destroy_process_group()


def all_ranks(ok: bool) -> bool:
    """Whether ``ok`` holds on every process of a distributed run (this one alone otherwise)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return ok
    backend = torch.distributed.get_backend()
    device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
    flag = torch.tensor([1.0 if ok else 0.0], device=device)
    torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
    return bool(flag.item())


def agreed_stop(requested: bool, world: int) -> bool:
    """Whether to stop after this iteration: asked on this process, or on any other one of a
    distributed run, so that all stop at the same iteration (one checkpoint, nobody left waiting)."""
    return requested if world == 1 else not all_ranks(not requested)
