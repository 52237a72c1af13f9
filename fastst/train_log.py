"""Training's log: every ``log_every`` iterations a row of losses per style to ``losses.csv`` (averaged
over the processes of a distributed run), the callback and the progress bar, and now and then a line on
the terminal."""

from __future__ import annotations

import os
import sys
import time

import torch

from fastst.config import TrainConfig
from fastst.runs import last_row

TERMINAL_PROGRESS_ENV = "FASTST_TERMINAL_PROGRESS"


def print_progress(config: TrainConfig, iteration: int, row: dict, start: int, t_start: float) -> None:
    """One line on the process's own stderr (the terminal of ``make``, also from inside a notebook's
    kernel): iterations, loss, speed and the time left."""
    done = iteration - start
    per_iteration = (time.perf_counter() - t_start) / max(done, 1)
    left = (config.iterations - iteration) * per_iteration
    print(
        f"  train {run_title(config)}: {iteration}/{config.iterations} iterations, loss {row['total']:.4g}, "
        f"{per_iteration:.2f} s/it, {left / 60:.1f} min left",
        file=sys.__stderr__,
        flush=True,
    )


def run_title(config: TrainConfig) -> str:
    names = config.style_names()
    return names[0] if len(names) == 1 else f"{len(names)} styles"


class LossLog:
    """The losses of the steps since the last log line, per style; every ``log_every`` iterations a
    row per style trained goes to losses.csv (averaged over DDP ranks), the callback and the bar."""

    TERMS = ("content", "style", "tv", "total")

    def __init__(self, t, bar, callback, t_start: float):
        self.t, self.bar, self.callback, self.t_start = t, bar, callback, t_start
        self.sums = torch.zeros(len(t.criteria), len(self.TERMS), dtype=torch.float64)
        self.counts = [0] * len(t.criteria)
        self.window_start, self.row = time.perf_counter(), last_row(t.run)
        self.terminal = bool(os.environ.get(TERMINAL_PROGRESS_ENV))

    def add(self, k: int, terms, iteration: int) -> None:
        self.sums[k] += torch.tensor(
            [float(getattr(terms, key).detach()) for key in self.TERMS], dtype=torch.float64
        )
        self.counts[k] += 1
        config = self.t.config
        if iteration % config.log_every == 0 or iteration == config.iterations:
            self._write(iteration)

    def _write(self, iteration: int) -> None:
        t, config = self.t, self.t.config
        if t.world > 1:  # log the global batch's losses, not rank 0's share
            values = self.sums.to(t.device)
            torch.distributed.all_reduce(values)
            self.sums = (values / t.world).cpu()
        now = time.perf_counter()
        images_per_s = sum(self.counts) * config.batch_size / max(now - self.window_start, 1e-9)
        for j in (j for j in range(len(self.counts)) if self.counts[j]):  # a row per style trained
            self.row = {
                "iteration": iteration,
                "style_name": t.names[j],
                **{key: float(v) / self.counts[j] for key, v in zip(self.TERMS, self.sums[j])},
                "lr": t.scheduler.get_last_lr()[0],
                "images_per_s": images_per_s,
                "elapsed_s": round(t.elapsed, 3),
            }
            if t.main:
                t.run.append_loss(self.row)
                if self.callback:
                    self.callback(iteration, self.row)
        if t.main:
            row = self.row
            self.bar.set_postfix(
                content=f"{row['content']:.3g}",
                style=f"{row['style']:.3g}",
                tv=f"{row['tv']:.3g}",
                img_s=f"{row['images_per_s']:.1f}",
            )
            if self.terminal and (iteration % (config.log_every * 10) == 0 or iteration == config.iterations):
                print_progress(config, iteration, row, t.start, self.t_start)
        self.sums.zero_()
        self.counts, self.window_start = [0] * len(self.counts), now
