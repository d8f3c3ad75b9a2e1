"""The ``nmc-assets`` command line: ``nmc-assets <subcommand> ...``.

Subcommands register themselves in :data:`SUBCOMMANDS` as ``name -> (help, add_arguments, run)``;
``run(args) -> int`` returns the exit status. To add one, write the two functions and one entry.

    nmc-assets sql "SELECT scan_id, count(*) FROM particle_features GROUP BY scan_id"
    nmc-assets ebsd grains MAP.ang --threshold-deg 5 --min-grain-size 10 --out GRAINS.tif
    nmc-assets view SCAN [--particle ID]        (napari: pip install -e ".[viewer]")
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path


# --- sql -------------------------------------------------------------------------------------------
def _add_sql_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("query", help='SQL to run, e.g. "SELECT * FROM scans"; "-" reads it from stdin')
    p.add_argument("--data-dir", default=None, help="data root (default: $NMC_DATA_DIR or ./data)")
    p.add_argument("--catalog", default=None, help="DuckDB file (default: <data-dir>/warehouse/nmc.duckdb)")
    p.add_argument("--max-rows", type=int, default=200, help="rows to print (default 200)")
    p.add_argument("--csv", action="store_true", help="print CSV instead of a table")


def _run_sql(args: argparse.Namespace) -> int:
    from nmc_assets.features.sql import CatalogMissingError, CatalogQueryError, format_table, query_catalog_frames
    from nmc_assets.paths import DataLayout

    layout = DataLayout.from_path(args.data_dir) if args.data_dir else DataLayout.from_env()
    catalog = Path(args.catalog) if args.catalog else layout.catalog
    query = sys.stdin.read() if args.query == "-" else args.query
    try:
        frames = query_catalog_frames(query, catalog)
    except CatalogMissingError:
        print(
            f"error: no catalog at {catalog}. Build it first: `make demo` (or materialize the "
            "particle_catalog asset), or point --data-dir / NMC_DATA_DIR at a data root that has one.",
            file=sys.stderr,
        )
        return 2
    except CatalogQueryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # duckdb.Error subclasses: syntax errors, unknown columns, refused file access
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    for k, (text, df) in enumerate(frames, 1):
        if len(frames) > 1:
            print(f"{chr(10) if k > 1 else ''}-- [{k}/{len(frames)}] {text}")
        if args.csv:
            df.head(args.max_rows).to_csv(sys.stdout, index=False)
        else:
            print(format_table(df, max_rows=args.max_rows))
    return 0


def _add_ebsd_arguments(p: argparse.ArgumentParser) -> None:
    from nmc_assets.ebsd.cli import add_arguments

    add_arguments(p)


def _run_ebsd(args: argparse.Namespace) -> int:
    from nmc_assets.ebsd.cli import run

    return run(args)


# --- view ------------------------------------------------------------------------------------------
def _add_view_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("scan", help="scan id (warehouse/tomograms/<scan>.zarr)")
    p.add_argument("--particle", type=int, default=None, help="centre on this particle (label value = particle_id)")
    p.add_argument("--data-dir", default=None, help="data root (default: $NMC_DATA_DIR or ./data)")
    p.add_argument("--screenshot", default=None, metavar="PNG",
                   help="save a screenshot there and exit (headless with QT_QPA_PLATFORM=offscreen)")


def _run_view(args: argparse.Namespace) -> int:
    from nmc_assets.paths import DataLayout
    from nmc_assets.viewer import ViewerMissingError, scan_scene, show

    layout = DataLayout.from_path(args.data_dir) if args.data_dir else DataLayout.from_env()
    try:
        scene = scan_scene(layout, args.scan, args.particle)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        out = show(scene, screenshot=args.screenshot)
    except ViewerMissingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    if args.screenshot:
        print(out)
    return 0


SUBCOMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "sql": ("run read-only SQL (SELECT) on the DuckDB catalog and print the results", _add_sql_arguments, _run_sql),
    "ebsd": ("EBSD maps: rebuild grains, cut particles into calibration sections, write virtual maps", _add_ebsd_arguments, _run_ebsd),
    "view": ("open a scan's tomogram, fused labels and features in napari (the viewer extra)", _add_view_arguments, _run_view),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nmc-assets", description="nmc_assets command line tools")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name, (help_text, add_arguments, run) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(p)
        p.set_defaults(_run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    return int(args._run(args))


if __name__ == "__main__":
    sys.exit(main())
