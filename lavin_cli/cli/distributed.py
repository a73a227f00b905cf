"""`lavin run` / `lavin video` under torchrun: every rank runs its share of the queries (whole
batches, see lavin_cli/inference/shards.py) on its own device, encodes the context once, writes
its own outputs and record lines (FILE.rank<N>); at the end rank 0 joins the records and every
rank exits with the worst exit code of all ranks, so that a failure anywhere shows.

    torchrun --nproc_per_node 8 -m lavin_cli run --task depth_estimation -i frames/ -o depth/

Coordination runs on gloo (CPU tensors, a few bytes); on GPUs the process group also carries
NCCL for CUDA tensors. Outside torchrun (WORLD_SIZE unset or 1) nothing here does anything.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from lavin_cli.errors import DeviceError, OutputError, UsageError
from lavin_cli.inference import shards
from lavin_cli.io.files import describe_os_error, write_atomic


@dataclass(frozen=True)
class Ranks:
    rank: int
    world: int
    local_rank: int

    @property
    def main(self) -> bool:
        return self.rank == 0

    def part(self, record: Path) -> Path:
        return record.with_name(f"{record.name}.rank{self.rank}")


def start() -> Optional[Ranks]:
    """Join torchrun's process group, or None when not under torchrun."""
    found = shards.torchrun_env()
    if found is None:
        return None
    import torch
    import torch.distributed as dist

    ranks = Ranks(*found)
    if not dist.is_initialized():
        cuda = _gpu_per_process()  # the same answer on every rank of a machine: one backend for all
        if cuda:
            torch.cuda.set_device(ranks.local_rank)
        try:
            dist.init_process_group("cpu:gloo,cuda:nccl" if cuda else "gloo")
        except (ValueError, RuntimeError) as exc:  # an environment torchrun did not make (no MASTER_ADDR)
            reason = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
            raise UsageError(f"cannot join the ranks' process group ({reason}); start lavin with torchrun, or unset "
                             "WORLD_SIZE and RANK") from None
    return ranks


def _local_world() -> int:
    """How many of torchrun's processes run on this machine."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)


def _gpu_per_process() -> bool:
    """Whether CUDA is here with a GPU for each of torchrun's processes on this machine."""
    import torch

    return torch.cuda.is_available() and _local_world() <= torch.cuda.device_count()


def device(ranks: Optional[Ranks], requested: str) -> str:
    """Each rank on its own GPU: 'auto' (where CUDA is present) and 'cuda' become cuda:LOCAL_RANK;
    more processes than GPUs on a machine is refused with the fix, before any weights are read."""
    if ranks is None or requested not in ("auto", "cuda"):
        return requested
    import torch

    if not torch.cuda.is_available():
        return "cpu" if requested == "auto" else requested  # 'cuda' without CUDA: the device check says so
    if not _gpu_per_process():
        gpus = torch.cuda.device_count()
        raise DeviceError(f"torchrun started {_local_world()} processes on this machine, "
                          f"which has {gpus} GPU(s): start one per GPU (--nproc_per_node {gpus}) or pass "
                          "{{device=cpu}}")
    return f"cuda:{ranks.local_rank}"


def worst(ranks: Optional[Ranks], code: int) -> int:
    """The highest exit code of all ranks (every rank calls this once, at the end)."""
    if ranks is None:
        return code
    import torch
    import torch.distributed as dist

    value = torch.tensor([code], dtype=torch.int64)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return int(value.item())


def join_records(ranks: Optional[Ranks], record: Optional[Path], append: bool) -> None:
    """Rank 0 writes RECORD from the ranks' parts: its run line, every query line in list order,
    one end line with the totals; the parts are removed. (Called by every rank, after `worst`.)"""
    if ranks is None or record is None:
        return
    import torch.distributed as dist

    dist.barrier()
    if not ranks.main:
        return
    lines = []
    for r in range(ranks.world):
        part = Ranks(r, ranks.world, 0).part(record)
        try:
            lines += [json.loads(line) for line in part.read_text().splitlines() if line.strip()]
        except (OSError, ValueError) as exc:
            raise OutputError(f"{part}: cannot join the record ({getattr(exc, 'strerror', None) or exc})") from None
    runs = [line for line in lines if line.get("type") == "run"]
    queries = sorted((line for line in lines if line.get("type") == "query"), key=lambda line: line["index"])
    ends = [line for line in lines if line.get("type") == "end"]
    end = {"type": "end", "ranks": ranks.world, **{k: sum(e.get(k, 0) for e in ends) for k in ("written", "failed", "skipped")},
           "rank_ends": ends}
    text = "".join(json.dumps(line) + "\n" for line in [runs[0] if runs else {}, *queries, end])
    try:
        previous = record.read_text() if append and record.exists() else ""
    except OSError as exc:
        raise OutputError(f"{record}: cannot be read to append ({describe_os_error(exc)})") from None
    write_atomic(record, (previous + text).encode(), overwrite=True)
    for r in range(ranks.world):
        Ranks(r, ranks.world, 0).part(record).unlink(missing_ok=True)


def stop(ranks: Optional[Ranks]) -> None:
    if ranks is not None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
