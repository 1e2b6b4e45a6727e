"""Progress on stderr: bars for long steps (generation, sampling, training epochs, evaluation
days, the tasks of a DAG run) and one-line messages. Set PERCOLATE_PROGRESS=0 for none."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Iterator


def enabled() -> bool:
    return os.environ.get("PERCOLATE_PROGRESS", "1") != "0"


def bar(total: int | None = None, desc: str = "", unit: str = "it", **kwargs):
    """A tqdm bar on stderr (updates at most twice a second; a log file gets few lines)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True, mininterval=0.5,
                disable=not enabled(), leave=True, **kwargs)


def say(message: str) -> None:
    """A message on stderr that does not break a bar in progress."""
    from tqdm import tqdm

    tqdm.write(f"percolate: {message}", file=sys.stderr)


@contextmanager
def generation_bar(date: str, calls: int) -> Iterator:
    """A progress callback for `synth.generate_day`, drawn as a bar over the day's calls."""
    with bar(calls, f"generating {date}", "call") as b:
        def update(event: dict) -> None:
            b.update(1)
            b.set_postfix_str(f"{event['video_s']:.0f} s of video, {event['frames_per_s']:.0f} frames/s", refresh=False)
        yield update


class EpochBars:
    """A progress callback for `models.fit`: one bar per model (member) trained."""

    def __init__(self) -> None:
        self.current, self.key = None, None

    def __call__(self, record: dict) -> None:
        key = (record["model"], record["seed"])
        if key != self.key:
            self.close()
            self.current = bar(record["epochs"], f"training {record['model']} (seed {record['seed']})", "epoch")
            self.key = key
        self.current.update(1)
        self.current.set_postfix_str(f"loss {record['loss']:.4f} acc {record['train_acc']:.3f}", refresh=False)
        if record["epoch"] == record["epochs"]:
            self.close()

    def close(self) -> None:
        if self.current is not None:
            self.current.close()
            self.current, self.key = None, None
