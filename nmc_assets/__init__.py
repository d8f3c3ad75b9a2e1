"""nmc_assets: X-ray nano-tomography of NMC cathodes as Dagster software-defined assets.

The science core (``beamline``, ``ingest``, ``particles``, ``segmentation``, ``features``,
``analytics``, ``synthesis``, and ``settings``, ``previews``) imports no Dagster; ``nmc_assets.defs`` wires
it into assets. Scripts that drive the assets live outside the package (``tools/``, ``benchmarks/``).
"""

__version__ = "0.1.0"
