"""Resources: where the data root is, where torch runs, where blocks run."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from nmc_assets.blockwise import DASK_SCHEDULER_ENV, MEMORY_BUDGET_ENV
from nmc_assets.device import resolve_torch_device, validate_device_spec
from nmc_assets.paths import DATA_DIR_ENV, DataLayout, default_data_dir


class DataRootResource(dg.ConfigurableResource):
    """The data root of docs/design.md §3.1 (``$NMC_DATA_DIR`` or ``./data``)."""

    data_dir: str = Field(default="", description="Data root; empty means $NMC_DATA_DIR or ./data.")

    @property
    def layout(self) -> DataLayout:
        return DataLayout(default_data_dir()) if not self.data_dir else DataLayout.from_path(self.data_dir)


class DeviceResource(dg.ConfigurableResource):
    """Where torch runs: ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``."""

    device: str = Field(default="auto", description="auto | cpu | cuda | cuda:N")

    def torch_device(self):
        """The resolved ``torch.device`` (imports torch; call inside a step, never at load time)."""
        return resolve_torch_device(validate_device_spec(self.device))


class BlocksResource(dg.ConfigurableResource):
    """Where the blockwise per-scan steps run their blocks, and how much memory a step may use.

    ``scheduler``: address of a running Dask scheduler (``tcp://host:8786``, env ``NMC_DASK_SCHEDULER``);
    empty = an in-process local Dask cluster with ``workers`` threads (0 = every core).
    ``memory_budget``: bytes a step may hold (``8GiB``, ``6000MB``; env ``NMC_MEMORY_BUDGET``); empty =
    75 % of the machine's (or container's) memory. A step that cannot fit fails at once, naming the
    scan, the step and the bytes it needs.
    """

    scheduler: str = Field(default="", description="Dask scheduler address (tcp://host:8786); empty = local, in process.")
    workers: int = Field(default=0, description="Local threads for blocks (0 = every core); ignored with a scheduler.")
    memory_budget: str = Field(default="", description="Per-step memory budget, e.g. 6GiB; empty = 75 % of the machine's memory.")

    def runner(self):
        """A :class:`~nmc_assets.blockwise.BlockRunner` (enter it with ``with``)."""
        from nmc_assets.blockwise import BlockRunner

        return BlockRunner(self.scheduler or None, self.workers or None)

    def budget_bytes(self) -> int:
        from nmc_assets.blockwise import default_memory_budget, parse_bytes

        return parse_bytes(self.memory_budget) if self.memory_budget else default_memory_budget()


def _env_workers() -> int:
    """``NMC_BLOCK_WORKERS`` as a count of local threads (0 = every core); a clear error for anything else."""
    text = (dg.EnvVar("NMC_BLOCK_WORKERS").get_value("0") or "0").strip()
    if not text.isdigit():
        raise ValueError(f"NMC_BLOCK_WORKERS must be a whole number of threads (0 = every core), got {text!r}")
    return int(text)


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(
        resources={
            "data_root": DataRootResource(data_dir=dg.EnvVar(DATA_DIR_ENV).get_value("") or ""),
            "device": DeviceResource(device=dg.EnvVar("NMC_DEVICE").get_value("auto") or "auto"),
            "blocks": BlocksResource(
                scheduler=dg.EnvVar(DASK_SCHEDULER_ENV).get_value("") or "",
                workers=_env_workers(),
                memory_budget=dg.EnvVar(MEMORY_BUDGET_ENV).get_value("") or "",
            ),
        }
    )
