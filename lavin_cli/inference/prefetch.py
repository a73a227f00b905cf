"""Read ahead: load the next items on a background thread while the model works on the current ones.

A thread, not a torch DataLoader: decoding and resizing images (Pillow) and clips (ffmpeg) spend
their time in C code that releases the GIL, so one thread overlaps them with the model's work at
no cost in memory or start-up; DataLoader worker processes would each import torch, cannot read
stdin, and would pickle every decoded image back. The queue holds at most `ahead` loaded items,
so memory stays bounded by the batch size, whatever the number of queries.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_DONE = object()


def prefetch(items: Iterable[T], load: Callable[[T], R], ahead: int = 1) -> Iterator[R]:
    """`load(item)` for every item, in order, computed up to `ahead` items in advance on a daemon
    thread. `load` should turn expected failures into values; an exception it raises anyway is
    re-raised here, in the consumer, at that item's turn."""
    box: queue.Queue = queue.Queue(maxsize=max(1, ahead))
    stop = threading.Event()

    def put(value) -> bool:
        while not stop.is_set():  # never block for good: the consumer may have gone
            try:
                box.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        for item in items:
            try:
                loaded = (True, load(item))
            except BaseException as exc:  # handed to the consumer, which decides
                put((False, exc))
                return
            if not put(loaded):
                return
        put((True, _DONE))

    thread = threading.Thread(target=work, name="lavin-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            ok, value = box.get()
            if value is _DONE:
                return
            if not ok:
                raise value
            yield value
    finally:
        stop.set()  # the thread ends after the item it is loading; nothing waits for it
