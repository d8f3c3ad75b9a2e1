"""Files of the synthesis steps: grain sections, the shell model, calibrated grain-model versions.

Every write is atomic. The folders (under the data root, docs/design.md §3.1) are chosen by the caller:

- grain sections folder: label TIFFs + sidecars (:func:`.sections.write_sections`) and ``manifest.json``
  (user data, label TIFFs and EBSD maps: :func:`nmc_assets.ebsd.cross_sections.write_cross_sections`);
  for embedded pseudo-EBSD sections also ``reference_params.json`` (read only by the quality check);
- shell model file: the fitted ``ShellParams`` and a summary (:func:`.shell_fit.fit_shell_params`);
- one grain-model folder per calibration version: ``checkpoint.pt`` + ``params.json``; a ``latest.json``
  ``{"version": ...}`` names the current one.

A calibration's version is a hash of the observed sections and of its configuration except the step
count, so a longer run of the same calibration resumes the same checkpoint.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

from nmc_assets.paths import LABELS_SUFFIXES
from nmc_assets.storage import atomic_write_json, sha256_file
from nmc_assets.synthesis.intervals import INTERVAL_PARAMETERS, architecture_verdict

MANIFEST_FILE = "manifest.json"
REFERENCE_FILE = "reference_params.json"
#: The packaged reference of the embedded pseudo-EBSD sections.
REFERENCE_SPEC = Path(__file__).resolve().parent / "data" / "reference_grain_params.json"


class MissingInputError(FileNotFoundError):
    """An input of a synthesis step has not been written yet (``str()`` says which step makes it)."""


# --- grain sections ----------------------------------------------------------------------------------
def write_pseudo_ebsd_sections(folder: Path, n_sections: int = 0) -> list:
    """Hard-tessellation planar sections of particles drawn from the packaged reference parameters, with
    the manifest and the reference record; ``n_sections`` 0: the reference file's count."""
    from nmc_assets.synthesis.sections import write_sections
    from nmc_assets.particles.grains import GrainParams
    from nmc_assets.particles.sections import hard_sections

    ref = json.loads(REFERENCE_SPEC.read_text())
    n = n_sections or int(ref["n_sections"])
    params = GrainParams.from_dict(ref["grain_params"])
    sections = hard_sections(params, [ref["particle_radius_um"]] * n, [ref["pixel_size_um"]] * n, seed=int(ref["seed"]))
    manifest = {"source": "pseudo_ebsd", "n_sections": n, "pixel_size_um": ref["pixel_size_um"]}
    write_sections(folder, sections, {MANIFEST_FILE: manifest, REFERENCE_FILE: {**ref, "n_sections": n, "mean_elongation": params.mean_elongation}})
    return sections


def read_manifest(folder: Path) -> dict:
    return json.loads((folder / MANIFEST_FILE).read_text())


def sections_fingerprint(folder: Path) -> str:
    """SHA256 over the section TIFFs and sidecars (the calibration's data), not the manifest or reference."""
    h = hashlib.sha256()
    for p in sorted(folder.glob("*")):
        if p.suffix in (".tif", ".tiff") or (p.suffix == ".json" and p.name not in (MANIFEST_FILE, REFERENCE_FILE)):
            h.update(p.name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def read_reference_params(folder: Path):
    """The reference ``GrainParams`` of embedded sections, ``None`` for user sections."""
    from nmc_assets.particles.grains import GrainParams

    path = folder / REFERENCE_FILE
    return GrainParams.from_dict(json.loads(path.read_text())["grain_params"]) if path.exists() else None


# --- shell model -------------------------------------------------------------------------------------
def label_volumes(fused_dir: Path, incoming: Path, source: str) -> list[Path]:
    """Label volumes to fit the shells from: ``fused`` (fused-label Zarrs), ``truth`` (``<scan>.labels.tif``
    in the drop folder) or ``auto`` (fused when there are any, else truth)."""
    if source not in ("auto", "fused", "truth"):
        raise ValueError(f"label source must be auto, fused or truth, got {source!r}")
    fused = sorted(fused_dir.glob("*.zarr"))
    truth = sorted(p for suffix in LABELS_SUFFIXES for p in incoming.glob(f"*{suffix}")) if incoming.is_dir() else []
    return {"fused": fused, "truth": truth}.get(source, fused or truth)


def read_shell_model(path: Path) -> dict:
    """The shell model file: ``params`` (the fitted ``ShellParams``), ``source``, the fit summary."""
    if not path.exists():
        raise MissingInputError(f"{path} is missing: materialize shell_model first")
    return json.loads(path.read_text())


def shell_params(shell_model: dict):
    """The ``ShellParams`` of a shell model read by :func:`read_shell_model`."""
    from nmc_assets.particles.shell import ShellParams

    return ShellParams(**shell_model["params"])


# --- grain model versions ----------------------------------------------------------------------------
def grain_model_version(sections_sha: str, gan_config: dict) -> str:
    """Version of a calibration: hash of the observed sections and of the config except the step count
    (so a longer run of the same calibration resumes the same checkpoint)."""
    cfg = {k: v for k, v in gan_config.items() if k != "steps"}
    blob = json.dumps({"sections": sections_sha, "config": cfg}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def save_grain_model(folder: Path, gan, version: str, intervals: dict | None = None, **extra) -> dict:
    """Write ``checkpoint.pt`` and ``params.json``: ``grain_params`` (the moment refinement's estimate when
    ``intervals`` (:func:`.intervals.moment_intervals`) are given and the model fits the section moments,
    else the GAN's), ``gan_params``, the
    intervals, convergence diagnostics (:mod:`.convergence`), checkpoint hash and ``extra``."""
    from nmc_assets.synthesis.convergence import diagnostics

    ckpt = gan.save(folder / "checkpoint.pt")
    gan_params = gan.calibrated_params()
    refined = bool(intervals) and architecture_verdict(intervals)["model_fits"]  # a misfit keeps the GAN's estimate
    final = replace(gan_params, **{k: v for k, v in intervals["estimate"].items() if k in INTERVAL_PARAMETERS}) if refined else gan_params
    method = "stereological GAN" + (", then method-of-simulated-moments refinement with 90 % intervals" if refined else "")
    if intervals and not refined:
        method += " (the moment refinement was not used: the model does not reproduce the section moments)"
    params = {
        "version": version,
        "grain_params": final.to_dict(),
        "gan_params": gan_params.to_dict(),
        "method": method,
        "intervals": intervals,
        "convergence": diagnostics(gan.history, gan.base.mean_elongation, gan.bounds_hit()),
        "learned": list(gan.names),
        "steps": gan.step,
        "initial_params": gan.config.initial_params().to_dict(),
        "checkpoint_sha256": sha256_file(ckpt),
        **extra,
    }
    atomic_write_json(folder / "params.json", params)
    return params


def latest_version(latest: Path) -> str:
    if not latest.exists():
        raise MissingInputError(f"{latest} is missing: materialize grain_model first")
    return json.loads(latest.read_text())["version"]


def read_grain_model(folder: Path) -> dict:
    """``params.json`` of a calibration folder."""
    return json.loads((folder / "params.json").read_text())
