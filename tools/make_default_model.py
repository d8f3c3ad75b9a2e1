"""Make the shipped default StarDist model from virtual scans, through the Dagster assets themselves.

    .venv/bin/python tools/make_default_model.py --root /tmp/seg_train [--install]

1. simulates labelled virtual scans into ``<root>/incoming`` (:data:`TRAIN_SCANS`): the ``default`` preset, the
   ``hard`` preset and samples between them (``mix``: :func:`nmc_assets.beamline.defaults.mix_config`),
   mostly at 0.2 um, some at 0.08-0.17 um (other bin factors and apparent particle sizes); 10 and 50 cycles;
   seeds 1001-1030 (the benchmarks use 2001-2002, 3001-3003 and 3101-3109),
2. materializes ``raw_tomogram`` for each, then ``stardist_training_set`` (whole scans held out) and
   ``stardist_model`` with ``train=True`` (in process, ephemeral Dagster instance),
3. with ``--install``: copies ``<root>/models/stardist/<name>`` into the repository's
   ``data/models/stardist/<name>`` and writes its README.md (this command and the figures).

The scratch root must be outside the repository. Takes ~25-40 min on 2 CPU cores (about 2 min simulation,
20 min training at the default 160 x 100 steps, the rest the assets and threshold tuning).
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

_S = (128, 256, 256)
#: (seed, cycles, kind, voxel size um, shape); kind: a preset name or "mix" (positions drawn from the seed).
#: Bin factors to the 0.4 um working pixel: 0.2 -> 2, 0.15/0.13 -> 3 (0.45/0.39 um), 0.17 -> 2 (0.34 um),
#: 0.1/0.08 -> 4/5 (0.4 um): particles at 0.85-1.2x their usual size in pixels.
TRAIN_SCANS = [
    *[(1000 + k, 10 if k % 2 else 50, "default", 0.2, _S) for k in range(1, 9)],
    *[(1008 + k, 10 if k % 2 else 50, "hard", 0.2, _S) for k in range(1, 7)],
    *[(1014 + k, 10 if k % 2 else 50, "mix", 0.2, _S) for k in range(1, 9)],
    (1023, 50, "hard", 0.15, (112, 224, 224)), (1024, 10, "mix", 0.17, (112, 224, 224)),
    (1025, 50, "default", 0.15, (112, 224, 224)), (1026, 50, "mix", 0.1, _S),
    (1027, 10, "hard", 0.1, _S), (1028, 50, "hard", 0.08, (160, 320, 320)),
    (1029, 10, "default", 0.08, (160, 320, 320)), (1030, 50, "mix", 0.13, (128, 256, 256)),
]


def scan_config(seed: int, cycles: int, kind: str, voxel_size_um: float, shape):
    """The :class:`ScanConfig` of one training scan (and the mix positions, empty for a preset)."""
    from nmc_assets.beamline.defaults import mix_config, preset_config

    size = {"shape": tuple(shape), "voxel_size_um": voxel_size_um, "cycles": cycles}
    if kind == "mix":
        return mix_config(seed, **size)
    return preset_config(kind, seed=seed, **size), {}


def scan_id(seed: int, cycles: int, kind: str, voxel_size_um: float, shape) -> str:
    return f"train_{kind}_s{seed}_c{cycles}_v{int(round(voxel_size_um * 1000))}nm"


def simulate(root: Path) -> list[str]:
    from nmc_assets.beamline.simulate import simulate_scan, write_scan

    ids = []
    for spec in TRAIN_SCANS:
        sid = scan_id(*spec)
        if not (root / "incoming" / f"{sid}.tif").exists():
            t0 = time.time()
            write_scan(simulate_scan(scan_config(*spec)[0]), root / "incoming", sid)
            print(f"simulated {sid} in {time.time() - t0:.0f} s", flush=True)
        ids.append(sid)
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
    ap.add_argument("--epochs", type=int, default=160)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--val-fraction", type=float, default=0.15, help="share of the scans held out (whole) for validation")
    ap.add_argument("--simulate-only", action="store_true", help="only simulate the training scans")
    ap.add_argument("--install", action="store_true", help="copy the model into the repository's data/models/stardist/")
    ap.add_argument("--skip-train", action="store_true", help="reuse the model already trained in --root (e.g. to --install it after checking it)")
    a = ap.parse_args(argv)
    root = Path(a.root).resolve()
    t0 = time.time()
    scans = simulate(root)
    print(f"simulated {len(scans)} scans in {time.time() - t0:.0f} s", flush=True)
    if a.simulate_only:
        return 0
    if not a.skip_train:
        instance = dg.DagsterInstance.ephemeral()
        instance.add_dynamic_partitions("scan", scans)
        resources = {"data_root": DataRootResource(data_dir=str(root)), "blocks": BlocksResource()}
        for s in scans:
            dg.materialize([raw_tomogram], partition_key=s, instance=instance, resources=resources)
        dg.materialize([stardist_training_set], instance=instance, resources=resources,
                       run_config={"ops": {"stardist_training_set": {"config": {"val_fraction": a.val_fraction}}}})
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
{len(scans)} virtual scans of the beamline simulator (version {simulator_version}; `train_<kind>_s<seed>_c<cycles>_v<voxel nm>nm`,
kind = the `default` or `hard` preset or `mix`, a sample between them drawn from the seed by
`nmc_assets.beamline.defaults.mix_config`; 128 x 256 x 256 voxels at 0.2 um, 112-160 voxels deep at
0.08-0.17 um), binned to the working pixel size, slices along xy, xz and yz:
{', '.join(scans)}.
Validation scans (held out whole): {', '.join(meta.get('val_scans', []))}.

- working pixel size: {meta['working_pixel_um']} um (scans are block-binned to it; 0.2 um data -> 2x)
- network: {tc['n_rays']} rays, grid ({tc['grid']},{tc['grid']}), U-Net depth {tc['unet_depth']}, {tc['unet_filters']} base filters, {meta['n_params']} parameters
- training: patch {tc['patch_size']}, batch {tc['batch_size']}, {tc['epochs']} epochs x {tc['steps_per_epoch']} steps, lr {tc['learning_rate']}, augmentation = {tc['augment']} (rot90/flip, intensity scale/shift, gamma {tc.get('aug_gamma', 0)}, contrast compression {tc.get('aug_contrast', 0)}, white noise, smooth noise {tc.get('aug_smooth_noise', 0)}, blur {tc.get('aug_blur', 0)} px, zoom {tc.get('aug_zoom', 0)}), seed {tc['seed']}; {meta['train_seconds']} s on a 2-core CPU
- thresholds (optimised on the validation scans): prob {meta['thresholds']['prob']:.3f}, nms {meta['thresholds']['nms']:.2f}
- validation (2D slices of the held-out scans): AP@0.5 = {meta['val_ap50']:.3f}, AP@0.75 = {meta['val_ap75']:.3f}
  (depends on which scans are held out: with hard scans among them it is not comparable to a model
  validated on default scans only)

3D accuracy of the fused labels on unseen scans: `benchmarks/results/segmentation.md` (default scans),
`benchmarks/results/hard.md` (hard and default presets, against the previous model) and
`benchmarks/results/voxel_size.md` (declared voxel size off by +-20 %).
"""
    (dst / "README.md").write_text(text)


if __name__ == "__main__":
    raise SystemExit(main())
