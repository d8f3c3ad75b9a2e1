"""CLI of the virtual beamline: ``python -m nmc_assets.beamline simulate|defaults ...``."""

from nmc_assets.beamline.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
