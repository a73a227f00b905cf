"""Encoded contexts kept between runs: a least-recently-used cache bounded in bytes.

A context's latents depend on its pairs' contents, the working size, the fit, the seed and the
precision (ImageRun builds the key); a `Pipeline` keeps the last one (a notebook calling it
again on the same pairs), `lavin serve` keeps as many as its --cache-mb holds.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Hashable

import numpy as np
import torch


def nbytes(value: Any) -> int:
    """Bytes held by tensors and arrays inside `value` (tuples and lists of them)."""
    if isinstance(value, torch.Tensor):
        return value.element_size() * value.nelement()
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, (tuple, list)):
        return sum(nbytes(v) for v in value)
    return 0


class ContextCache:
    """`entries` most recently used contexts, at most `max_bytes` in all (thread safe)."""

    def __init__(self, max_bytes: int | None = None, entries: int | None = None):
        self.max_bytes, self.entries = max_bytes, entries
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            found = self._items.get(key)
            if found is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return found[0]

    def put(self, key: Hashable, value: Any) -> None:
        size = nbytes(value)
        with self._lock:
            self._items.pop(key, None)
            if self.max_bytes is not None and size > self.max_bytes:
                return  # larger than the whole cache: not kept
            self._items[key] = (value, size)
            while (self.entries is not None and len(self._items) > self.entries) or \
                    (self.max_bytes is not None and self.size > self.max_bytes):
                self._items.popitem(last=False)

    @property
    def size(self) -> int:
        return sum(size for _, size in self._items.values())

    def __len__(self) -> int:
        return len(self._items)
