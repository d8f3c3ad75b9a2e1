"""EBSD orientation maps -> grains -> grain-label sections for the grain-model calibration.

Science only (no Dagster): :mod:`.maps` (the map and its phases), :mod:`.readers` (.ang/.ctf/HDF5 via orix,
Oxford .cpr/.crc), :mod:`.grains` (grains from disorientations), :mod:`.particles` (particles -> sections and
the per-grain table), :mod:`.cross_sections` (the ``cross_sections/`` folder), :mod:`.virtual` (virtual maps
with ground truth from the particle model), :mod:`.cli` (``nmc-assets ebsd``).
"""
