"""Particle segmentation: StarDist2D on three orthogonal views, fused into 3D instance labels.

Modules (science core, no Dagster):

- :mod:`.metrics`      instance matching (AP = tp / (tp + fp + fn), precision, recall, mean matched IoU)
- :mod:`.scaling`      working pixel size, bin factors, block-mean binning and label upsampling
- :mod:`.training_set` 2D image/label slices along xy, xz, yz from labelled scans + user annotations
- :mod:`.model`        StarDist2D training, threshold optimisation, model folder metadata
- :mod:`.views`        per-view probability and mean-ray-distance maps, written slab by slab to Zarr
- :mod:`.fusion`       3D labels from the summed view maps (seeded watershed; k-means baseline)
- :mod:`.refine`       full-resolution boundary refinement, exactly local (numba kernels in ``_refine_kernels``)
- :mod:`.fullres`      fused labels upsampled and refined block by block with a halo (Dask via ``blockwise``)
- :mod:`.classical`    Otsu + distance-transform watershed baseline (no learning)
- :mod:`.slice2d`      one 2D slice: StarDist, full-resolution refinement, pieces of one particle merged
- :mod:`.pipeline`     the full path scan -> view maps -> fused labels, used by assets and benchmarks
"""
