"""nmc_assets: X-ray nano-tomography of NMC cathodes as Dagster software-defined assets.

The science core (``beamline``, ``ingest``, ``particles``, ``segmentation``, ``features``,
``analytics``, ``synthesis``) imports no Dagster; ``nmc_assets.defs`` wires it into assets.
"""

__version__ = "0.1.0"
