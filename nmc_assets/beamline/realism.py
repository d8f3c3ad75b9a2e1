"""A virtual slab at the real slice's pixel scale, for the side-by-side realism check (docs/realism.md).

The real slice (``../shared/data/example_xy_left.tif``, 655 x 1024 px) carries no pixel size. With this
simulator's size law (median equivalent diameter 8 um) its particle section diameters (median 110.7 px
by ``realism.py``) match at about 0.06 um per pixel, so the slab is simulated at 0.06 um with the default
simulator settings and the real slice's in-plane size; ``realism.py`` compares its middle slice.
"""

from __future__ import annotations

from pathlib import Path

from nmc_assets.beamline.simulate import ScanConfig, SimulatedScan, simulate_scan

REAL_PIXEL_SIZE_UM = 0.06  # estimated (see the module docstring)
REAL_SLICE_SHAPE = (655, 1024)


def realism_slab(seed: int = 7, cycles: int = 50, n_slices: int = 24,
                 voxel_size_um: float = REAL_PIXEL_SIZE_UM) -> SimulatedScan:
    """Simulate a thin (n_slices, 655, 1024) slab at the real slice's estimated pixel size."""
    return simulate_scan(ScanConfig(shape=(n_slices, *REAL_SLICE_SHAPE), voxel_size_um=voxel_size_um,
                                    cycles=cycles, seed=seed))


def write_realism_slab(path: str | Path, **kwargs) -> Path:
    """Write the slab's 8-bit image as a TIFF stack (z, y, x) for ``realism.py``."""
    import tifffile

    from nmc_assets.storage import atomic_path

    scan = realism_slab(**kwargs)
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, scan.image, imagej=True, metadata={"axes": "ZYX"})
    return Path(path)


# --- fair comparison: electrode region, figures over a region, cracks in numbers (issue 15) ------------
#
# The figure definitions below are those of ``../shared/tools/realism.py`` (scaling by the 0.5 / 99.5
# percentiles, Otsu of the 2-px Gaussian, noise = robust sd of horizontal neighbour differences inside the
# 3-px-eroded bright phase, contrast in noise units, spectrum slope between 1/64 and 1/4 cycles/px),
# re-implemented with an optional region mask; with the whole field as region they give the tool's numbers
# exactly (checked in benchmarks/bench_realism.py).

def downsample_like_table(image8, factor: float):
    """The real slice at a coarser pixel: ``skimage.transform.rescale`` (linear, anti-aliased) of the
    8-bit image, back to 8-bit grey (the recipe behind docs/realism.md's 0.2-um table; factor 0.3)."""
    import numpy as np
    from skimage import transform

    d = transform.rescale(np.asarray(image8, dtype=np.uint8), factor, anti_aliasing=True)
    return np.rint(d * 255).astype(np.uint8)


def scale01(image, region=None):
    """Scale to [0, 1] by the 0.5 / 99.5 percentiles (over ``region`` when given), clipped."""
    import numpy as np

    a = np.asarray(image, dtype=np.float32)
    lo, hi = np.percentile(a if region is None else a[region], [0.5, 99.5])
    return np.clip((a - lo) / max(hi - lo, 1e-6), 0, 1)


def electrode_mask(image, pixel_size_um: float, *, flat_sd: float = 1.5, gap_um: float = 4.0):
    """Boolean mask of the electrode region of a 2D slice (True = electrode).

    Non-electrode = (a) the flat outside region of the reconstruction: local grey sd (7-px window, on the
    8-bit grey scale) below ``flat_sd``, opened and kept where it touches the image border; plus (b) the
    bands without particles along the image border (separator side, current-collector side): the
    complement of the bright phase (Otsu of the 2-px Gaussian, outside the flat region) closed with a disk
    of radius ``gap_um`` (gaps between neighbouring particles up to 2 x gap_um are filled), kept where
    it touches the border. Binder pockets enclosed by particles stay electrode.
    """
    import numpy as np
    from scipy import ndimage as ndi
    from skimage import filters, morphology

    a = np.asarray(image, dtype=np.float32)
    m = ndi.uniform_filter(a, 7)
    sd = np.sqrt(np.maximum(ndi.uniform_filter(a * a, 7) - m * m, 0))
    flat = ndi.binary_opening(sd < flat_sd, iterations=2)
    flat = _touching_border(flat)
    s = filters.gaussian(a, 2, preserve_range=True)
    t = filters.threshold_otsu(s[~flat]) if (~flat).any() else filters.threshold_otsu(s)
    bright = (s > t) & ~flat
    r = max(1, int(round(gap_um / pixel_size_um)))
    pad = r + 1
    # pad with "bright" so the closing does not open at the border, then crop back
    closed = ndi.binary_closing(np.pad(bright, pad, mode="edge"), morphology.disk(r))[pad:-pad, pad:-pad]
    outside = _touching_border(~closed & ~bright) | flat
    outside = ndi.binary_dilation(outside, iterations=2) & ~bright | flat
    return ~outside


def _touching_border(mask):
    import numpy as np
    from scipy import ndimage as ndi

    lab, n = ndi.label(mask)
    if n == 0:
        return np.zeros_like(mask, dtype=bool)
    edge = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    return np.isin(lab, edge[edge > 0])


def largest_rectangle(mask):
    """(row slice, col slice) of the largest axis-aligned rectangle inside ``mask`` (histogram method)."""
    import numpy as np

    h = np.zeros(mask.shape[1], dtype=np.int64)
    best = (0, 0, 0, 0, 0)  # area, top, bottom (excl), left, right (excl)
    for i, row in enumerate(np.asarray(mask, dtype=bool)):
        h = np.where(row, h + 1, 0)
        stack: list[int] = []
        for j in range(len(h) + 1):
            cur = h[j] if j < len(h) else 0
            while stack and h[stack[-1]] >= cur:
                height = h[stack.pop()]
                left = stack[-1] + 1 if stack else 0
                if height * (j - left) > best[0]:
                    best = (int(height * (j - left)), i + 1 - int(height), i + 1, left, j)
            stack.append(j)
    return slice(best[1], best[2]), slice(best[3], best[4])


def _spectrum_slope(img) -> float:
    import numpy as np

    f = np.abs(np.fft.fftshift(np.fft.fft2(img - img.mean()))) ** 2
    h, w = f.shape
    yy, xx = np.indices(f.shape)
    r = np.hypot((yy - h / 2) / h, (xx - w / 2) / w)
    bins = np.logspace(np.log10(1 / 64), np.log10(1 / 4), 12)
    idx = np.digitize(r.ravel(), bins)
    p = np.array([f.ravel()[idx == i].mean() for i in range(1, len(bins))])
    c = np.sqrt(bins[1:] * bins[:-1])
    return float(np.polyfit(np.log(c), np.log(p), 1)[0])


def region_figures(img01, region=None) -> dict:
    """The tool's figures of a [0, 1]-scaled slice over ``region`` (None = whole field): percentiles,
    bright fraction, contrast in noise units, noise; the spectrum slope on the largest rectangle inside
    the region. Returns also ``values`` (the region's grey values, for the Wasserstein distance)."""
    import numpy as np
    from scipy import ndimage as ndi
    from skimage import filters

    img = np.asarray(img01, dtype=np.float32)
    reg = np.ones(img.shape, bool) if region is None else np.asarray(region, bool)
    s = filters.gaussian(img, 2)
    bright = (s > filters.threshold_otsu(s[reg])) & reg
    inner = ndi.binary_erosion(s > filters.threshold_otsu(s[reg]), iterations=3) & reg
    diff = (img[:, 1:] - img[:, :-1])[inner[:, 1:] & inner[:, :-1]]
    noise = float(1.4826 * np.median(np.abs(diff - np.median(diff))) / np.sqrt(2)) if diff.size else float("nan")
    rest = reg & ~bright
    contrast = float((img[bright].mean() - img[rest].mean()) / noise) if noise > 0 else float("nan")
    rs, cs = (slice(None), slice(None)) if region is None else largest_rectangle(reg)
    return {"percentiles": np.percentile(img[reg], [5, 25, 50, 75, 95]).round(3).tolist(),
            "bright_fraction": round(float(bright.sum() / reg.sum()), 3),
            "contrast_in_noise_units": round(contrast, 2), "noise": round(noise, 4),
            "spectrum_slope": round(_spectrum_slope(img[rs, cs]), 2),
            "spectrum_window": [rs.stop - rs.start if rs.stop else img.shape[0],
                                cs.stop - cs.start if cs.stop else img.shape[1]],
            "region_fraction": round(float(reg.mean()), 3), "values": img[reg]}


def wasserstein(a_values, b_values) -> float:
    """1-D Wasserstein distance of two grey-value samples, every 7th value as in the tool."""
    from scipy.stats import wasserstein_distance

    return float(wasserstein_distance(a_values.ravel()[::7], b_values.ravel()[::7]))


def particle_mask(img01, pixel_size_um: float, region=None):
    """Filled particle sections of a [0, 1] slice: Otsu of the 2-px Gaussian (over ``region``), holes
    (voids, cracks) filled after a closing with a 0.3-um disk, sections under 1 um^2 dropped."""
    import numpy as np
    from scipy import ndimage as ndi
    from skimage import filters, morphology

    s = filters.gaussian(np.asarray(img01, np.float32), 2)
    reg = np.ones(s.shape, bool) if region is None else np.asarray(region, bool)
    m = (s > filters.threshold_otsu(s[reg])) & reg
    m = ndi.binary_closing(m, morphology.disk(max(1, int(round(0.3 / pixel_size_um)))))
    m = ndi.binary_fill_holes(m)
    return morphology.remove_small_objects(m, max_size=int(1.0 / pixel_size_um ** 2))


def crack_mask(img01, pixel_size_um: float, noise: float, particles, *, tophat_um: float = 0.6,
               seed_sigmas: float = 6.0, grow_sigmas: float = 3.0, rim_um: float = 0.4,
               min_length_um: float = 0.6):
    """Cracks (dark thin structures inside particles) of a [0, 1] slice, and their black top-hat depth.

    Detector: black top-hat of the slice (1-px Gaussian first) with a disk of radius ``tophat_um`` (keeps
    dark structures narrower than ~2 x tophat_um), inside the particle sections eroded by ``rim_um`` (so
    the dark binder at concave particle edges is not taken); hysteresis: components with a pixel deeper
    than ``seed_sigmas`` x noise, grown over pixels deeper than ``grow_sigmas`` x noise; then each
    component is cut at half its own peak depth (95th percentile), so the mask is the crack's full width
    at half maximum, independent of its contrast. Components whose skeleton is shorter than
    ``min_length_um`` (round texture dots, isolated pores) are dropped.
    Returns (mask, top-hat depth image).
    """
    import numpy as np
    from scipy import ndimage as ndi
    from skimage import filters, morphology

    img = ndi.gaussian_filter(np.asarray(img01, np.float32), 1.0)
    r = max(1, int(round(tophat_um / pixel_size_um)))
    depth = morphology.black_tophat(img, morphology.disk(r))
    inside = ndi.binary_erosion(particles, morphology.disk(max(1, int(round(rim_um / pixel_size_um)))))
    cand = filters.apply_hysteresis_threshold(np.where(inside, depth, 0), grow_sigmas * noise, seed_sigmas * noise)
    lab, n = ndi.label(cand)
    if n == 0:
        return np.zeros_like(cand), depth
    peak = np.asarray(ndi.labeled_comprehension(depth, lab, np.arange(1, n + 1),
                                                lambda v: np.percentile(v, 95), np.float64, 0.0))
    mask = cand & (depth >= 0.5 * peak[np.maximum(lab - 1, 0)])
    lab, n = ndi.label(mask)
    length = np.bincount(lab[morphology.skeletonize(mask)], minlength=n + 1) * pixel_size_um
    keep = length >= min_length_um
    keep[0] = False
    return keep[lab], depth


def crack_figures(img01, pixel_size_um: float, noise: float, particles, mask=None) -> dict:
    """Crack width and contrast of a [0, 1] slice.

    Width: local width along the crack's medial axis, ``2 x EDT - 1`` px on the skeleton of the crack mask
    (a straight band w px wide gives w), in um; quartiles over skeleton pixels (quantised to the pixel
    grid: 1, 1.83, 3 px ...); and the mean width = crack area / skeleton length (not quantised). Contrast: mean grey of the
    crack pixels vs the particle pixels 1-3 px around them (not cracks), in noise units. ``mask``: a given
    crack mask (e.g. the simulator's truth), else :func:`crack_mask`'s.
    """
    import numpy as np
    from scipy import ndimage as ndi
    from skimage import morphology

    img = np.asarray(img01, np.float32)
    if mask is None:
        mask, _ = crack_mask(img, pixel_size_um, noise, particles)
    if not mask.any():
        return {"crack_fraction": 0.0, "width_um_q25_median_q75": [float("nan")] * 3,
                "mean_width_um": float("nan"), "contrast_in_noise_units": float("nan")}
    edt = ndi.distance_transform_edt(mask)
    w = (2 * edt[morphology.skeletonize(mask)] - 1) * pixel_size_um
    ring = ndi.binary_dilation(mask, iterations=3) & ~ndi.binary_dilation(mask, iterations=1) & particles
    contrast = (img[ring].mean() - img[mask].mean()) / noise if ring.any() else float("nan")
    return {"crack_fraction": round(float(mask.sum() / max(particles.sum(), 1)), 4),
            "width_um_q25_median_q75": np.percentile(w, [25, 50, 75]).round(3).tolist(),
            "mean_width_um": round(float(mask.sum() / max(w.size, 1) * pixel_size_um), 3),
            "contrast_in_noise_units": round(float(contrast), 2), "components": int(ndi.label(mask)[1])}
