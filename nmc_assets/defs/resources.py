"""Resources: where the data root is, and where torch runs."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from nmc_assets.device import resolve_torch_device, validate_device_spec
from nmc_assets.paths import DATA_DIR_ENV, DataLayout, default_data_dir


class DataRootResource(dg.ConfigurableResource):
    """The data root of DESIGN 3.1 (``$NMC_DATA_DIR`` or ``./data``)."""

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


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(
        resources={
            "data_root": DataRootResource(data_dir=dg.EnvVar(DATA_DIR_ENV).get_value("") or ""),
            "device": DeviceResource(device=dg.EnvVar("NMC_DEVICE").get_value("auto") or "auto"),
        }
    )
