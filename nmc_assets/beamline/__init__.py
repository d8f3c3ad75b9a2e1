"""Virtual beamline: packs star-shaped NMC particles with radial grains (:mod:`nmc_assets.particles`),
cracks them by a known damage law (:mod:`nmc_assets.beamline.damage`), renders phase-contrast-like
8-bit tomograms and writes them with ground truth into a drop folder.

    from nmc_assets.beamline import ScanConfig, simulate_scan, write_scan, write_default_scans
    python -m nmc_assets.beamline simulate --out data/incoming --shape 160 384 384 --voxel-size 0.2 --cycles 50 --seed 3
    python -m nmc_assets.beamline simulate --preset hard --out data/incoming        (PRESETS, preset_config)
"""

from nmc_assets.beamline.damage import DEFAULT_DAMAGE_LAW, DamageLaw, DamageOverride
from nmc_assets.beamline.defaults import DEFAULT_SCANS, PRESETS, preset_config, write_default_scans
from nmc_assets.beamline.simulate import SIMULATOR_VERSION, ScanConfig, SimulatedScan, simulate_scan, write_scan

__all__ = ["DEFAULT_DAMAGE_LAW", "DamageLaw", "DamageOverride", "DEFAULT_SCANS", "PRESETS", "preset_config", "write_default_scans", "SIMULATOR_VERSION",
           "ScanConfig", "SimulatedScan", "simulate_scan", "write_scan"]
