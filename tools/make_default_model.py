"""Make the shipped default StarDist model from virtual scans, through the Dagster assets themselves.

    .venv/bin/python tools/make_default_model.py --root /tmp/seg_train [--install]

1. simulates labelled virtual scans (several seeds, 10 and 50 cycles) into ``<root>/incoming``,
2. materializes ``raw_tomogram`` for each, then ``stardist_training_set`` (whole scans held out) and
   ``stardist_model`` with ``train=True`` (in process, ephemeral Dagster instance),
3. with ``--install``: copies ``<root>/models/stardist/<name>`` into the repository's
   ``data/models/stardist/<name>`` and writes its README.md (this command and the figures).

The scratch root must be outside the repository. Takes ~20-30 min on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TRAIN_SCANS = [(1001, 10), (1002, 50), (1003, 10), (1004, 50), (1005, 10), (1006, 50), (1007, 10), (1008, 50)]


def simulate(root: Path, shape: tuple[int, int, int], voxel_size_um: float) -> list[str]:
    from nmc_assets.beamline.simulate import ScanConfig, simulate_scan, write_scan

    ids = []
    for seed, cycles in TRAIN_SCANS:
        scan_id = f"train_s{seed}_c{cycles}"
        if not (root / "incoming" / f"{scan_id}.tif").exists():
            write_scan(simulate_scan(ScanConfig(shape=shape, voxel_size_um=voxel_size_um, cycles=cycles, seed=seed)), root / "incoming", scan_id)
        ids.append(scan_id)
    return ids


def main(argv: list[str] | None = None) -> int:
    import dagster as dg

    from nmc_assets.defs.beamline import raw_tomogram
    from nmc_assets.defs.resources import BlocksResource, DataRootResource
    from nmc_assets.defs.segmentation import stardist_model, stardist_training_set
    from nmc_assets.segmentation.model import DEFAULT_MODEL_NAME, copy_model, read_model_meta, shipped_model_dir

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True, help="scratch data root (outside the repository)")
    ap.add_argument("--name", default=DEFAULT_MODEL_NAME)
    ap.add_argument("--shape", type=int, nargs=3, default=(128, 256, 256))
    ap.add_argument("--voxel-size", type=float, default=0.2)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--steps", type=int, default=80)
    ap.add_argument("--install", action="store_true", help="copy the model into the repository's data/models/stardist/")
    ap.add_argument("--skip-train", action="store_true", help="reuse the model already trained in --root (e.g. to --install it after checking it)")
    a = ap.parse_args(argv)
    root = Path(a.root).resolve()
    t0 = time.time()
    scans = simulate(root, tuple(a.shape), a.voxel_size)
    print(f"simulated {len(scans)} scans in {time.time() - t0:.0f} s", flush=True)
    if not a.skip_train:
        instance = dg.DagsterInstance.ephemeral()
        instance.add_dynamic_partitions("scan", scans)
        resources = {"data_root": DataRootResource(data_dir=str(root)), "blocks": BlocksResource()}
        for s in scans:
            dg.materialize([raw_tomogram], partition_key=s, instance=instance, resources=resources)
        dg.materialize([stardist_training_set], instance=instance, resources=resources)
        cfg = {"name": a.name, "train": True, "epochs": a.epochs, "steps_per_epoch": a.steps}
        dg.materialize([stardist_model], instance=instance, resources=resources, run_config={"ops": {"stardist_model": {"config": cfg}}})
    model_dir = root / "models" / "stardist" / a.name
    meta = read_model_meta(model_dir)
    print(json.dumps({k: meta[k] for k in ("val_ap50", "val_ap75", "thresholds", "train_seconds", "n_params")}), flush=True)
    if a.install:
        dst = shipped_model_dir(a.name)
        copy_model(model_dir, dst)
        args = [x for x in (argv if argv is not None else sys.argv[1:]) if x != "--skip-train"]
        cmd = "python tools/make_default_model.py " + " ".join(shlex.quote(x) for x in args)
        sidecar = json.loads((root / "incoming" / f"{scans[0]}.json").read_text())
        write_readme(dst, meta, cmd, scans, a, sidecar.get("simulator_version", "?"))
        print(f"installed {dst}")
    return 0


def write_readme(dst: Path, meta: dict, cmd: str, scans: list[str], a, simulator_version: str) -> None:
    tc = meta["train_config"]
    text = f"""# StarDist2D model `{meta['name']}` (shipped default)

Native StarDist folder (`config.json`, `weights_best.h5`, `thresholds.json`) plus `nmc_model.json`
(working pixel size, thresholds, validation AP, training scans). Load it with
`StarDist2D(None, name="{meta['name']}", basedir="data/models/stardist")` or
`nmc_assets.segmentation.model.load_stardist(path)`.

## How it was made

```
.venv/bin/{cmd}
```

i.e. the `stardist_model` asset with `train=True` on the `stardist_training_set` asset, built from
{len(scans)} virtual scans of the beamline simulator (version {simulator_version}, shape {list(a.shape)} at {a.voxel_size} um,
seeds/cycles {', '.join(scans)}), binned to the working pixel size, slices along xy, xz and yz.
Validation scans (held out whole): {', '.join(meta.get('val_scans', []))}.

- working pixel size: {meta['working_pixel_um']} um (scans are block-binned to it; 0.2 um data -> 2x)
- network: {tc['n_rays']} rays, grid ({tc['grid']},{tc['grid']}), U-Net depth {tc['unet_depth']}, {tc['unet_filters']} base filters, {meta['n_params']} parameters
- training: patch {tc['patch_size']}, batch {tc['batch_size']}, {tc['epochs']} epochs x {tc['steps_per_epoch']} steps, lr {tc['learning_rate']}, augmentation (rot90/flip, intensity, noise) = {tc['augment']}, seed {tc['seed']}; {meta['train_seconds']} s on a 2-core CPU
- thresholds (optimised on the validation scans): prob {meta['thresholds']['prob']:.3f}, nms {meta['thresholds']['nms']:.2f}
- validation (2D slices of the held-out scans): AP@0.5 = {meta['val_ap50']:.3f}, AP@0.75 = {meta['val_ap75']:.3f}

3D accuracy of the fused labels on unseen scans: see `benchmarks/results/segmentation.md`.
"""
    (dst / "README.md").write_text(text)


if __name__ == "__main__":
    raise SystemExit(main())
