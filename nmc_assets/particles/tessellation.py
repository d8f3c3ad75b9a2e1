"""Hard tessellation of the radial GBPD (:mod:`.grains`): the cell distance, the voxel labels, and the
principal axes of labelled grains.

The distance is torch (any device, differentiable in seeds, metrics and weights): the quadratic form
``d_i(x) = (x - s_i)^T M_i (x - s_i) - w_i`` is written as one matmul of per-point monomials
``[z^2, y^2, x^2, 2zy, 2zx, 2yx, z, y, x, 1]`` with a per-grain ``(10, n)`` coefficient matrix.
:func:`hard_labels` is its argmin (chunked, float32); the soft assignments are in :mod:`.soft_tessellation`.
numpy-only at import; torch is imported inside the functions.
"""

from __future__ import annotations

import numpy as np

from nmc_assets.particles.grains import Grains
from nmc_assets.particles.shell import Shell, shell_normalised_distance

__all__ = ["cell_distances", "hard_labels", "render_grain_labels", "grain_principal_axes"]


def _as_tensor(a, device=None, dtype=None):
    import torch

    if isinstance(a, torch.Tensor):
        return a.to(device=device if device is not None else a.device, dtype=dtype or a.dtype)
    return torch.as_tensor(np.asarray(a), device=device, dtype=dtype or torch.float32)


def _grain_coefficients(seeds, metrics, weights):
    """(10, n) matrix C with d(x) = phi(x) @ C, phi = [z^2, y^2, x^2, 2zy, 2zx, 2yx, z, y, x, 1]."""
    import torch

    m = metrics
    ms = torch.einsum("nij,nj->ni", m, seeds)  # M s
    const = torch.einsum("ni,ni->n", seeds, ms) - weights  # s^T M s - w
    quad = torch.stack([m[:, 0, 0], m[:, 1, 1], m[:, 2, 2], m[:, 0, 1], m[:, 0, 2], m[:, 1, 2]], dim=0)
    return torch.cat([quad, -2.0 * ms.T, const[None]], dim=0)


def _monomials(points):
    import torch

    z, y, x = points[:, 0], points[:, 1], points[:, 2]
    one = torch.ones_like(z)
    return torch.stack([z * z, y * y, x * x, 2 * z * y, 2 * z * x, 2 * y * x, z, y, x, one], dim=1)


def cell_distances(points, seeds, metrics, weights):
    """``d[p, i] = (x_p - s_i)^T M_i (x_p - s_i) - w_i`` as a torch tensor (P, n), um^2.

    Inputs are torch tensors (or arrays, converted to float32 on the points' device); the result is
    differentiable in all of them. Points and seeds in um, same frame, axes (z, y, x).
    """
    import torch

    pts = _as_tensor(points)
    dev, dt = pts.device, pts.dtype
    s = _as_tensor(seeds, dev, dt)
    m = _as_tensor(metrics, dev, dt)
    w = _as_tensor(weights, dev, dt)
    if pts.ndim != 2 or pts.shape[1] != 3 or s.ndim != 2 or s.shape[1] != 3:
        raise ValueError(f"points and seeds must be (P, 3) and (n, 3), got {tuple(pts.shape)}, {tuple(s.shape)}")
    if m.shape != (s.shape[0], 3, 3) or w.shape != (s.shape[0],):
        raise ValueError(f"metrics (n,3,3) and weights (n,) expected for n={s.shape[0]}, got "
                         f"{tuple(m.shape)}, {tuple(w.shape)}")
    return torch.matmul(_monomials(pts), _grain_coefficients(s, m, w).to(dt))


def _device(device):
    import torch

    from nmc_assets.device import resolve_torch_device

    if isinstance(device, torch.device):
        return device
    return resolve_torch_device(str(device))


def hard_labels(points, grains: Grains, chunk: int = 1 << 16, device="cpu") -> np.ndarray:
    """Index (0..n-1, int64 numpy) of the grain minimising d_i for each point ((P, 3) um, centre frame).

    Points are processed in chunks of ``chunk`` so the (chunk, n) distance block bounds memory. On the
    CPU torch runs single-threaded here: the (chunk, 10) x (10, n) products are too thin to gain from
    threads, and on a shared machine extra threads only contend (measured 1.2-30x slower with 2).
    """
    import torch

    dev = _device(device)
    pts_all = np.asarray(points, dtype=np.float32)
    out = np.empty(len(pts_all), dtype=np.int64)
    threads = torch.get_num_threads()
    if dev.type == "cpu":
        torch.set_num_threads(1)
    try:
        _hard_labels_chunks(pts_all, grains, chunk, dev, out)
    finally:
        torch.set_num_threads(threads)
    return out


def _hard_labels_chunks(pts_all, grains, chunk, dev, out) -> None:
    import torch

    with torch.no_grad():
        coeff = _grain_coefficients(torch.as_tensor(grains.seeds, device=dev, dtype=torch.float64),
                                    torch.as_tensor(grains.metrics, device=dev, dtype=torch.float64),
                                    torch.as_tensor(grains.weights, device=dev, dtype=torch.float64)).float()
        for start in range(0, len(pts_all), chunk):
            p = torch.as_tensor(pts_all[start:start + chunk], device=dev)
            out[start:start + chunk] = torch.argmin(_monomials(p) @ coeff, dim=1).cpu().numpy()


def render_grain_labels(shell: Shell, grains: Grains, voxel_size_um: float, device="cpu",
                        shape: tuple[int, int, int] | None = None,
                        center_vox: tuple[float, float, float] | None = None,
                        chunk: int = 1 << 16) -> np.ndarray:
    """uint16 (z, y, x) grain label volume of one particle: 0 outside the shell, 1..n inside.

    Labels are the grain index + 1, renumbered consecutively over the grains that own at least one
    voxel (in grain-index order). By default the grid is the shell's bounding cube centred on the particle.
    """
    if shape is None:
        half = int(np.ceil(shell.max_radius_um() / voxel_size_um)) + 1
        shape = (2 * half + 1,) * 3
    if center_vox is None:
        center_vox = tuple((n - 1) / 2.0 for n in shape)
    inside = shell_normalised_distance(shell, shape, voxel_size_um, center_vox) <= 1.0
    idx = np.nonzero(inside)
    pts = (np.stack(idx, axis=1).astype(np.float32) - np.asarray(center_vox, np.float32)) * np.float32(voxel_size_um)
    lab = hard_labels(pts, grains, chunk=chunk, device=device)
    present = np.zeros(len(grains) + 1, dtype=np.int64)
    present[lab + 1] = 1
    relabel = np.cumsum(present)  # grain index + 1 -> consecutive label
    if relabel[-1] > np.iinfo(np.uint16).max:
        raise ValueError(f"{relabel[-1]} grains exceed the uint16 label range")
    out = np.zeros(shape, dtype=np.uint16)
    out[idx] = relabel[lab + 1].astype(np.uint16)
    return out


def grain_principal_axes(labels: np.ndarray, voxel_size_um: float = 1.0,
                         center_vox: tuple[float, float, float] | None = None,
                         min_voxels: int = 20) -> dict[str, np.ndarray]:
    """Per grain of a label volume: major principal axis, its |cos| with the radial direction of the grain
    centroid, and the ratio of largest to smallest principal sd. Grains under ``min_voxels`` are skipped.

    Returns arrays ``label, n_voxels, radial_cos, aspect, centroid_um`` (centroid relative to the centre).
    """
    from scipy import ndimage as ndi

    if center_vox is None:
        center_vox = tuple((n - 1) / 2.0 for n in labels.shape)
    n = int(labels.max())
    rows = {"label": [], "n_voxels": [], "radial_cos": [], "aspect": [], "centroid_um": []}
    slices = ndi.find_objects(labels)
    for k, sl in enumerate(slices, start=1):
        if sl is None:
            continue
        m = labels[sl] == k
        cnt = int(m.sum())
        if cnt < min_voxels:
            continue
        p = np.stack(np.nonzero(m), axis=1).astype(np.float64) + np.array([s.start for s in sl])
        p = (p - np.asarray(center_vox)) * voxel_size_um
        c = p.mean(0)
        cov = np.cov((p - c).T)
        ev, evec = np.linalg.eigh(cov)
        major = evec[:, -1]
        radial = c / max(np.linalg.norm(c), 1e-12)
        rows["label"].append(k)
        rows["n_voxels"].append(cnt)
        rows["radial_cos"].append(abs(float(major @ radial)))
        rows["aspect"].append(float(np.sqrt(max(ev[-1], 1e-12) / max(ev[0], 1e-12))))
        rows["centroid_um"].append(c)
    del n
    return {k: np.asarray(v) for k, v in rows.items()}
