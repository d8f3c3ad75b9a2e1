"""A ``particle_features`` table drawn from a known damage law (tests and benchmarks of the regression).

The law mirrors the virtual beamline's: damage grows with particle size (equivalent diameter), with
depth along z (towards the separator), with the contact fraction and with the number of cycles, plus
noise; nothing else. Every other attribute is either independent of damage (orientations, elongation,
neighbour statistics) or a leak that restates it (crack surface, intensity statistics), as in real
features. Columns follow docs/design.md §3.3.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nmc_assets.features.columns import CONFIDENCE_COLUMNS

#: Attributes the synthetic law depends on (size is represented by volume and outer surface).
TRUE_DRIVERS = ("volume_um3", "surface_outer_um2", "z_um", "contact")
#: Attributes drawn independently of damage.
NUISANCE_ATTRIBUTES = ("yaw_deg", "pitch_deg", "roll_deg", "orien_iso", "elong_std", "elongation", "sphericity_std")


def synthetic_features(
    n_per_condition: int = 400,
    cycles: tuple[int, ...] = (10, 50),
    *,
    thickness_um: float = 60.0,
    noise: float = 0.01,
    seed: int = 0,
) -> pd.DataFrame:
    """A features table with ``n_per_condition`` particles per cycling condition.

    damage = k(cycles) * (0.40 s + 0.30 depth + 0.30 contact) + N(0, noise), clipped to [0, 0.9], with
    s the equivalent diameter scaled to [0, 1] over 4-14 um, depth = z / thickness in [0, 1], contact ~ Beta(2, 3) and
    k = 0.15 + 0.35 * (1 - exp(-cycles / 40)).
    """
    rng = np.random.default_rng(seed)
    parts = []
    for scan_index, n_cycles in enumerate(cycles):
        n = n_per_condition
        diameter = rng.uniform(4.0, 14.0, n)
        volume = np.pi / 6 * diameter**3 * rng.normal(1.0, 0.03, n)
        roughness = rng.lognormal(0.0, 0.05, n)
        surface = np.pi * diameter**2 * rng.lognormal(0.08, 0.04, n) * roughness
        z = rng.uniform(0.0, thickness_um, n)
        contact = rng.beta(2.0, 3.0, n)
        k = 0.15 + 0.35 * (1 - np.exp(-n_cycles / 40.0))
        size = (diameter - 4.0) / 10.0
        damage = np.clip(k * (0.40 * size + 0.30 * z / thickness_um + 0.30 * contact) + rng.normal(0, noise, n), 0.0, 0.9)
        elongation = 1.0 + rng.lognormal(-1.5, 0.5, n)
        frame = pd.DataFrame(
            {
                "scan_id": f"synthetic-{n_cycles}",
                "particle_id": np.arange(1, n + 1, dtype=np.int64),
                "cycles": n_cycles,
                "voxel_size_um": 0.07,
                "x_um": rng.uniform(0, 100, n),
                "y_um": rng.uniform(0, 100, n),
                "z_um": z,
                "yaw_deg": rng.uniform(-180, 180, n),
                "pitch_deg": rng.uniform(-90, 90, n),
                "roll_deg": rng.uniform(-180, 180, n),
                # leaks: computed from the crack voxels / the intensity over the filled particle
                "e_density": 1.0 - 0.8 * damage + rng.normal(0, 0.005, n),
                "homogeneity": 1.0 / (0.05 + 0.5 * damage + rng.uniform(0, 0.01, n)),
                "surface_inner_um2": 2.5 * damage * surface + rng.uniform(0, 1.0, n),
                "rough_inner": 1.0 + 0.6 * damage + rng.normal(0, 0.02, n),
                # shape and neighbourhood, independent of damage apart from size and contact
                "surface_outer_um2": surface,
                "volume_um3": volume,
                "elongation": elongation,
                "sphericity": 36 * np.pi * volume**2 / surface**3,
                "vs_ratio": volume ** (1 / 3) / surface**0.5,
                "rough_outer": roughness,
                "contact": contact,
                "p_density": np.clip(0.45 + 0.4 * contact + rng.normal(0, 0.08, n), 0, 1),
                "dist_nearest_um": rng.uniform(6.0, 16.0, n),
                "volume_std": rng.lognormal(5.0, 0.4, n),
                "orien_iso": rng.uniform(0, 1, n),
                "elong_std": rng.lognormal(-2.0, 0.3, n),
                "touches_border": rng.uniform(0, 1, n) < 0.08,
                "damage": damage,
                # its own stream, so the columns above stay what they were before it was added
                "sphericity_std": np.random.default_rng([seed, scan_index, 1]).lognormal(-2.5, 0.3, n),
            }
        )
        conf = np.random.default_rng([seed, scan_index, 2])  # own stream, as for sphericity_std
        for column in CONFIDENCE_COLUMNS:  # label-free segmentation confidence: mostly confident, unrelated to damage
            frame[column] = conf.beta(8.0, 1.0, n)
        parts.append(frame)
    return pd.concat(parts, ignore_index=True)
