"""Splitting a query list between processes, and resuming one, without changing a single byte.

Queries are grouped into batches by their position in the whole list (batch b holds positions
b * batch_size ... (b + 1) * batch_size - 1), and batches, not queries, are what shards share
and what resuming skips: every query is computed in the same batch, with the same neighbours,
whether the list runs in one process, in N shards (`--shard K/N`, or torchrun's ranks) or is
resumed after an interruption. Batch b belongs to shard b mod N.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Callable

from lavin_cli.errors import OptionError, UsageError


@dataclass(frozen=True)
class Shard:
    index: int  # K, from 0
    count: int  # N

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse(text: str) -> Shard:
    """'K/N' with 0 <= K < N."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not match:
        raise OptionError("shard", f"{text!r} is not K/N (e.g. 0/4: the first of four shards)")
    shard = Shard(int(match.group(1)), int(match.group(2)))
    if shard.count < 1 or shard.index >= shard.count:
        raise OptionError("shard", f"{text}: K must be 0 to N-1 and N at least 1")
    return shard


def torchrun_env() -> tuple[int, int, int] | None:
    """(RANK, WORLD_SIZE, LOCAL_RANK) as torchrun sets them, or None outside torchrun (a world
    of one); values that are not whole numbers, or a RANK outside the world, are refused."""
    def number(name: str, default: int) -> int:
        text = os.environ.get(name, "").strip()
        if not text:
            return default
        if not re.fullmatch(r"\d+", text):
            raise UsageError(f"{name}={text!r} is not a whole number (torchrun sets it; unset it outside torchrun)")
        return int(text)

    world = number("WORLD_SIZE", 1)
    if world <= 1:
        return None
    rank = number("RANK", 0)
    if rank >= world:
        raise UsageError(f"RANK={rank} is outside WORLD_SIZE={world} (torchrun sets both; unset them outside torchrun)")
    return rank, world, number("LOCAL_RANK", 0)


def from_torchrun() -> Shard | None:
    """The shard of this process under torchrun (RANK of WORLD_SIZE), or None outside it."""
    found = torchrun_env()
    return None if found is None else Shard(found[0], found[1])


def batch_of(index: int, batch_size: int) -> int:
    return index // batch_size


def select(count: int, batch_size: int, shard: Shard | None) -> list[int]:
    """Positions (of `count` queries) this shard runs: the whole batches b with b mod N == K."""
    if shard is None:
        return list(range(count))
    return [i for i in range(count) if batch_of(i, batch_size) % shard.count == shard.index]


def pending(indices: list[int], batch_size: int, done: Callable[[int], bool]) -> tuple[list[int], set[int]]:
    """For resuming: (positions still to run, positions among them already done). A batch runs
    again whole when any of its queries is missing, so that the missing ones are computed with
    the same neighbours as before; its finished queries are not written again."""
    finished = {i for i in indices if done(i)}
    open_batches = {batch_of(i, batch_size) for i in indices if i not in finished}
    todo = [i for i in indices if batch_of(i, batch_size) in open_batches]
    return todo, finished & set(todo)
