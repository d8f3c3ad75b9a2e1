"""Blockwise execution of the per-scan steps: block grids, parallel runs on Dask, progress, memory budget.

Science core (no Dagster). Every blockwise step is written as a pure function over one block (paths in,
a chunk of an output store or a small result out) and run through :class:`BlockRunner`, which hands
the blocks to Dask (``dask.distributed``): an in-process local cluster using every core by default,
or a running Dask cluster given its scheduler address (``NMC_DASK_SCHEDULER``). Results come back in
block order whatever order they finished in, so outputs do not depend on the worker count.

Axes are (z, y, x); shapes and halos in voxels; memory in bytes.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

#: Environment variable with the address of a Dask scheduler (``tcp://host:8786``); unset = local.
DASK_SCHEDULER_ENV = "NMC_DASK_SCHEDULER"
#: Environment variable with the per-step memory budget (``8GiB``, ``6000MB`` or bytes).
MEMORY_BUDGET_ENV = "NMC_MEMORY_BUDGET"


# --------------------------------------------------------------------------------------------------
# block grids
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Block:
    """One block of a grid: ``core`` is what the block owns, ``outer`` the core plus its halo (clipped)."""

    index: tuple[int, ...]
    core: tuple[slice, ...]
    outer: tuple[slice, ...]

    @property
    def core_in_outer(self) -> tuple[slice, ...]:
        """Where the core lies inside an array read at ``outer``."""
        return tuple(slice(c.start - o.start, c.stop - o.start) for c, o in zip(self.core, self.outer))

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(s.stop - s.start for s in self.core)


def block_grid(shape: Sequence[int], block_shape: Sequence[int], halo: int | Sequence[int] = 0) -> list[Block]:
    """The blocks tiling ``shape`` (C order), each ``block_shape`` (the last ones may be smaller)."""
    shape, block_shape = tuple(int(s) for s in shape), tuple(int(b) for b in block_shape)
    if len(shape) != len(block_shape) or min(block_shape, default=1) < 1:
        raise ValueError(f"block shape {block_shape} does not fit array shape {shape}")
    halos = (int(halo),) * len(shape) if isinstance(halo, int) else tuple(int(h) for h in halo)
    starts = [range(0, s, b) for s, b in zip(shape, block_shape)]
    blocks = []
    for index, corner in zip(itertools.product(*(range(len(r)) for r in starts)), itertools.product(*starts)):
        core = tuple(slice(c, min(c + b, s)) for c, b, s in zip(corner, block_shape, shape))
        outer = tuple(slice(max(0, c.start - h), min(s, c.stop + h)) for c, h, s in zip(core, halos, shape))
        blocks.append(Block(tuple(index), core, outer))
    return blocks


def check_halo(shape: Sequence[int], halo: int, what: str) -> None:
    """Fail when an axis is shorter than the halo a blockwise step needs (``what`` names the input)."""
    short = [(ax, s) for ax, s in zip("zyx", shape) if s <= halo]
    if short:
        axes = ", ".join(f"{ax}={s}" for ax, s in short)
        raise ValueError(f"{what}: axis {axes} voxels is not longer than the {halo}-voxel halo this step needs")


# --------------------------------------------------------------------------------------------------
# progress
# --------------------------------------------------------------------------------------------------
class Progress:
    """Report ``done / total`` blocks (or other ``unit``) with elapsed and remaining time, at most every ``interval_s``."""

    def __init__(self, what: str, total: int, report: Callable[[str], None] | None, interval_s: float = 5.0,
                 unit: str = "blocks"):
        self.what, self.total, self.report, self.interval_s = what, int(total), report, float(interval_s)
        self.unit = unit
        self.start = self.last = time.monotonic()
        self.done = 0

    def message(self, now: float | None = None) -> str:
        elapsed = (time.monotonic() if now is None else now) - self.start
        left = elapsed / self.done * (self.total - self.done) if self.done else float("nan")
        eta = "?" if math.isnan(left) else f"{left:.0f} s"
        return f"{self.what}: {self.done}/{self.total} {self.unit}, {elapsed:.0f} s elapsed, about {eta} left"

    def advance(self, n: int = 1) -> None:
        self.update(self.done + n)

    def update(self, done: int) -> None:
        """Set the count of finished units and report when due (always at the end)."""
        self.done = int(done)
        now = time.monotonic()
        if self.report is not None and (now - self.last >= self.interval_s or self.done == self.total):
            self.last = now
            self.report(self.message(now))


# --------------------------------------------------------------------------------------------------
# memory budget
# --------------------------------------------------------------------------------------------------
class MemoryBudgetError(MemoryError):
    """A step cannot fit its memory budget (raised before any work starts)."""


def parse_bytes(text: str | int | float) -> int:
    """``"8GiB"``, ``"6000MB"``, ``"1.5 G"`` or a number of bytes -> bytes."""
    if isinstance(text, (int, float)):
        return int(text)
    units = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "kib": 2**10, "m": 10**6, "mb": 10**6, "mib": 2**20,
             "g": 10**9, "gb": 10**9, "gib": 2**30, "t": 10**12, "tb": 10**12, "tib": 2**40}
    s = str(text).strip().lower().replace(" ", "")
    number = s.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = s[len(number):]
    if not number or unit not in units:
        raise ValueError(f"cannot read a memory size from {text!r}; use e.g. 8GiB, 6000MB or bytes")
    return int(float(number) * units[unit])


def machine_memory_bytes() -> int:
    """Memory this process may use: the cgroup limit when there is one, else the machine's total RAM."""
    limits = []
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = open(path).read().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:
            limits.append(int(text))
    try:
        limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        pass
    return min(limits) if limits else 8 * 2**30


def default_memory_budget() -> int:
    """``$NMC_MEMORY_BUDGET`` if set, else 75 % of :func:`machine_memory_bytes`."""
    env = os.environ.get(MEMORY_BUDGET_ENV)
    return parse_bytes(env) if env else int(0.75 * machine_memory_bytes())


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def workers_within_budget(*, scan: str, step: str, budget: int, fixed: int, per_worker: int, workers: int) -> int:
    """How many blocks may run at once within ``budget`` (bytes); :class:`MemoryBudgetError` if not even one.

    ``fixed``: bytes the step holds whatever the parallelism (e.g. a binned volume); ``per_worker``:
    bytes one block in flight needs (inputs with halo, temporaries, output).
    """
    need_one = fixed + per_worker
    if need_one > budget:
        raise MemoryBudgetError(
            f"scan {scan!r}, step {step}: needs about {gib(need_one)} ({gib(fixed)} fixed + {gib(per_worker)} per "
            f"block) but the memory budget is {gib(budget)}; raise it ({MEMORY_BUDGET_ENV} or the step's "
            "memory_budget config), use smaller blocks, or run the step on a larger machine / Dask cluster"
        )
    return max(1, min(int(workers), (budget - fixed) // max(per_worker, 1)))


# --------------------------------------------------------------------------------------------------
# running blocks on Dask
# --------------------------------------------------------------------------------------------------
#: Block items larger than this (bytes, ``dask.sizeof``) are scattered to the workers before their task
#: is submitted: Dask warns about (and slows down on) task graphs that carry megabytes of data, as a
#: whole small scan in one block does.
SCATTER_BYTES = 1 << 20


class BlockRunner:
    """Runs block functions on Dask and gives the results back in submission order.

    ``scheduler``: address of a running Dask scheduler (``tcp://...``), or ``None`` for an in-process
    local cluster with ``workers`` threads (default: every core). Use as a context manager; the local
    cluster is closed on exit, a remote one is left running.
    """

    def __init__(self, scheduler: str | None = None, workers: int | None = None):
        self.scheduler = scheduler or None
        self.workers = int(workers or os.cpu_count() or 1)
        self._client = None

    @classmethod
    def from_env(cls, workers: int | None = None) -> "BlockRunner":
        return cls(os.environ.get(DASK_SCHEDULER_ENV) or None, workers)

    @property
    def where(self) -> str:
        return f"Dask cluster {self.scheduler}" if self.scheduler else f"local Dask, {self.workers} thread(s)"

    def __enter__(self) -> "BlockRunner":
        from distributed import Client, LocalCluster

        if self.scheduler:
            self._client = Client(self.scheduler, set_as_default=False)
        else:
            cluster = LocalCluster(n_workers=1, threads_per_worker=self.workers, processes=False,
                                   dashboard_address=":0", silence_logs=40)
            self._client = Client(cluster, set_as_default=False)
        return self

    def __exit__(self, *exc: Any) -> None:
        client, self._client = self._client, None
        if client is not None:
            cluster = None if self.scheduler else client.cluster
            client.close()
            if cluster is not None:
                cluster.close()

    def map(self, func: Callable[..., Any], items: Iterable[Any], *, progress: Progress | None = None,
            max_in_flight: int | None = None, **kwargs: Any) -> list[Any]:
        """``[func(item, **kwargs) for item in items]`` on the workers, at most ``max_in_flight`` at once.

        Results are returned in the order of ``items``. The first failing block raises its exception
        (after the blocks in flight are cancelled).
        """
        if self._client is None:
            with self:
                return self.map(func, items, progress=progress, max_in_flight=max_in_flight, **kwargs)
        from dask.sizeof import sizeof
        from distributed import as_completed

        items = list(items)
        if not items:
            return []
        limit = max(1, int(max_in_flight or len(items)))
        results: list[Any] = [None] * len(items)
        pending = iter(enumerate(items))
        futures: dict[Any, int] = {}
        name = getattr(func, "__name__", "block")
        token = os.urandom(4).hex()

        def submit_next():
            nxt = next(pending, None)
            if nxt is None:
                return None
            i, item = nxt
            if sizeof(item) > SCATTER_BYTES:  # sent to the workers directly, not inside the task graph
                item = self._client.scatter([item], hash=False)[0]
            fut = self._client.submit(func, item, pure=False, key=f"{name}-{token}-{i}", **kwargs)
            futures[fut] = i
            return fut

        first = [f for f in (submit_next() for _ in range(limit)) if f is not None]
        queue = as_completed(first, loop=self._client.loop)
        try:
            for fut in queue:
                i = futures.pop(fut)
                results[i] = fut.result()
                if progress is not None:
                    progress.advance()
                nxt = submit_next()
                if nxt is not None:
                    queue.add(nxt)
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
        return results


def iter_chunks(n: int, size: int) -> Iterator[slice]:
    """Consecutive slices of ``size`` over ``range(n)``."""
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))
