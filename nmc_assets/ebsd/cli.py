"""``nmc-assets ebsd grains|sections|virtual``: grains and calibration sections from EBSD maps.

    nmc-assets ebsd grains MAP --threshold-deg 5 --min-grain-size 10 --out GRAINS.tif
    nmc-assets ebsd sections MAP [MAP ...] --out DIR
    nmc-assets ebsd virtual --out DIR --n 8 [--grid hex]

``grains`` writes a uint32 TIFF on the map's (square) grid, 0 = no grain; ``sections`` writes the sections
exactly as the ``grain_sections`` asset does (label TIFFs + sidecars, ``manifest.json``, ``ebsd_grains.parquet``);
``virtual`` writes virtual ``.ang`` maps of the particle model with their truth (:mod:`.virtual`).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from nmc_assets.ebsd.particles import SectionSettings

__all__ = ["add_arguments", "run"]


def _add_settings(p: argparse.ArgumentParser, names: tuple[str, ...]) -> None:
    from nmc_assets.settings import description

    for f in dataclasses.fields(SectionSettings):
        if f.name not in names:
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.type in (bool, "bool"):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default, help=description(f))
        else:
            kind = int if f.type in (int, "int") else str if f.type in (str, "str") else float
            p.add_argument(flag, type=kind, default=f.default, help=f"{description(f)} (default {f.default})")


_GRAIN_OPTIONS = ("threshold_deg", "min_grain_size", "min_confidence", "max_mad_deg", "min_band_contrast")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="ebsd_command", metavar="<grains|sections|virtual>", required=True)
    g = sub.add_parser("grains", help="rebuild grains of one map: uint32 label TIFF on the map's grid (0 = no grain)")
    g.add_argument("map", help="EBSD map: .ang, .ctf, .cpr (+ .crc), .h5oina, .h5")
    g.add_argument("--out", required=True, help="output TIFF")
    _add_settings(g, _GRAIN_OPTIONS)
    s = sub.add_parser("sections", help="one grain-label section per particle, as grain_sections reads them")
    s.add_argument("maps", nargs="+", help="EBSD maps")
    s.add_argument("--out", required=True, help="output folder (replaced as a whole)")
    _add_settings(s, tuple(f.name for f in dataclasses.fields(SectionSettings)))
    v = sub.add_parser("virtual", help="virtual .ang maps of model particles with ground truth")
    v.add_argument("--out", required=True, help="output folder (maps; truth in <out>/truth/)")
    v.add_argument("--n", type=int, default=4, help="number of maps")
    v.add_argument("--grid", choices=("square", "hex"), default="square")
    v.add_argument("--step-um", type=float, default=0.1, help="step (um)")
    v.add_argument("--radius-um", type=float, default=2.5, help="particle radius (um)")
    v.add_argument("--seed", type=int, default=0)


def _settings(args: argparse.Namespace) -> SectionSettings:
    vals = {f.name: getattr(args, f.name) for f in dataclasses.fields(SectionSettings) if hasattr(args, f.name)}
    return SectionSettings(**vals)


def run(args: argparse.Namespace) -> int:
    try:
        if args.ebsd_command == "grains":
            return _grains(args)
        if args.ebsd_command == "sections":
            return _sections(args)
        return _virtual(args)
    except ValueError as exc:  # EbsdError and bad settings: "<file>: <problem>"
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _grains(args) -> int:
    import numpy as np
    import tifffile

    from nmc_assets.ebsd.grains import rebuild_grains
    from nmc_assets.ebsd.readers import read_map
    from nmc_assets.storage import atomic_path

    m = read_map(args.map)
    labels = rebuild_grains(m, _settings(args))
    with atomic_path(Path(args.out)) as tmp:
        tifffile.imwrite(tmp, labels.astype(np.uint32), compression="zlib", metadata=None, photometric="minisblack")
    print(f"{args.map}: {labels.max()} grains ({m.shape[0]} x {m.shape[1]} points, step {m.step_um} um, "
          f"{m.metadata.get('grid', 'square')}) -> {args.out}")
    return 0


def _sections(args) -> int:
    from nmc_assets.ebsd.cross_sections import write_cross_sections

    sections = write_cross_sections(Path(args.out), None, _settings(args), maps=[Path(p) for p in args.maps])
    print(f"{len(sections)} sections from {len(args.maps)} map(s) -> {args.out}")
    return 0


def _virtual(args) -> int:
    from nmc_assets.ebsd.virtual import VirtualEbsdSettings, write_virtual_maps

    s = VirtualEbsdSettings(grid=args.grid, step_um=args.step_um, radius_um=args.radius_um)
    paths = write_virtual_maps(Path(args.out), args.n, s, seed=args.seed)
    print(f"{len(paths)} virtual maps -> {args.out} (truth in {Path(args.out) / 'truth'})")
    return 0
