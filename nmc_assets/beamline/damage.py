"""The simulator's damage law: the target crack fraction of each particle (COMMON "Damage" conventions).

    base    = b0 + b_size * (d - d_ref) + b_depth * z_norm + b_contact * contact
    damage* = clip(base, 0, base_max) * (cycles / cycles_ref) ** cycles_exponent + noise,
    noise   ~ Normal(0, noise_sd), result clipped to [0, damage_max]

Drivers (and nothing else):

* ``d``: the particle's volume-equivalent diameter in um (bigger particles crack more: longer diffusion
  paths, larger strain gradients);
* ``z_norm``: normalised depth of the particle centre along the thickness axis z, 0 at the current
  collector (z = 0) and 1 at the separator side (z = top of the scan); particles near the separator see
  higher local current and crack more;
* ``contact``: fraction of the particle's outer surface touching other particles (mechanical constraint
  from neighbours raises stress);
* ``cycles``: number of charge/discharge cycles (damage accumulates sub-linearly with cycling).

``damage*`` is the target crack + void volume fraction of the filled particle; the cracking step
(:mod:`nmc_assets.beamline.cracks`) opens grain boundaries and a central void until the realised
fraction reaches it, so the realised damage in the truth table follows the law up to voxel rounding.

:class:`DamageOverride` (the ``hard`` preset) keeps the law's ranking of the particles but replaces the
distribution of their targets: the particle ranked k by the law (noise included) gets the k-th smallest
of n draws from a Beta distribution scaled to ``[0, max]`` with the given mean, so the drivers keep their
sign while the spread (mean ~0.1, a tail up to ~0.4) is set directly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from nmc_assets.settings import setting

import numpy as np

__all__ = ["DamageLaw", "DEFAULT_DAMAGE_LAW", "DamageOverride"]


@dataclass(frozen=True)
class DamageLaw:
    """Coefficients of the damage law (see the module docstring); damage is a volume fraction."""

    b0: float = 0.03
    b_size_per_um: float = 0.012
    d_ref_um: float = 8.0
    b_depth: float = 0.06
    b_contact: float = 0.15
    base_max: float = 0.3
    cycles_ref: float = 50.0
    cycles_exponent: float = 0.5
    noise_sd: float = 0.01
    damage_max: float = 0.35

    def cycles_factor(self, cycles: float) -> float:
        if cycles < 0:
            raise ValueError(f"cycles must be >= 0, got {cycles}")
        return float((cycles / self.cycles_ref) ** self.cycles_exponent)

    def expected(self, diameter_um, z_norm, contact, cycles: float) -> np.ndarray:
        """Noise-free target damage (array over particles)."""
        base = (self.b0 + self.b_size_per_um * (np.asarray(diameter_um, float) - self.d_ref_um)
                + self.b_depth * np.asarray(z_norm, float) + self.b_contact * np.asarray(contact, float))
        return np.clip(np.clip(base, 0.0, self.base_max) * self.cycles_factor(cycles), 0.0, self.damage_max)

    def sample(self, rng: np.random.Generator, diameter_um, z_norm, contact, cycles: float) -> tuple[np.ndarray, np.ndarray]:
        """Target damage with noise and the noise itself (both arrays over particles)."""
        mean = self.expected(diameter_um, z_norm, contact, cycles)
        noise = self.noise_sd * rng.standard_normal(mean.shape)
        return np.clip(mean + noise, 0.0, self.damage_max), noise

    def to_dict(self) -> dict:
        d = asdict(self)
        d["formula"] = ("damage = clip(clip(b0 + b_size_per_um*(d_um - d_ref_um) + b_depth*z_norm + "
                        "b_contact*contact, 0, base_max) * (cycles/cycles_ref)**cycles_exponent "
                        "+ Normal(0, noise_sd), 0, damage_max)")
        return d


DEFAULT_DAMAGE_LAW = DamageLaw()


@dataclass(frozen=True)
class DamageOverride:
    """Target damage distribution that replaces the law's spread, keeping its ranking (module docstring)."""

    mean: float = setting(0.1, "mean target damage (crack + void volume fraction of the filled particle)")
    max: float = setting(0.4, "upper end of the scaled Beta distribution (no target exceeds it)")
    concentration: float = setting(2.5, "Beta a + b; smaller = wider spread, a longer tail towards max "
                                         "(2.5: ~4 % of particles above 0.3, largest of 500 ~0.38)")

    def __post_init__(self) -> None:
        if not 0 < self.mean < self.max <= 1:
            raise ValueError(f"need 0 < mean < max <= 1, got mean {self.mean}, max {self.max}")
        if self.concentration <= 0:
            raise ValueError(f"concentration must be > 0, got {self.concentration}")

    def apply(self, rng: np.random.Generator, law_damage: np.ndarray) -> np.ndarray:
        """Targets with this distribution, assigned in the order of ``law_damage`` (array over particles)."""
        law_damage = np.asarray(law_damage, float)
        m = self.mean / self.max
        draws = np.sort(rng.beta(m * self.concentration, (1 - m) * self.concentration, size=law_damage.shape))
        out = np.empty_like(law_damage)
        out[np.argsort(law_damage, kind="stable")] = draws * self.max
        return out

    def to_dict(self) -> dict:
        return {**asdict(self), "formula": "damage = k-th smallest of n draws of max * Beta(a, b), a + b = concentration, "
                                           "a / (a + b) = mean / max, k = rank of the law's damage"}
