"""Does the drivers ranking recover a known damage law? (Virtual scans: the law is known.)

The virtual beamline's law uses particle size, depth along z, contact fraction and cycles, plus noise.
Size has no single column: it is seen through ``volume_um3`` and ``surface_outer_um2`` (``vs_ratio`` is
V^(1/3)/S^(1/2), dimensionless: a shape measure, not a size), so a driver *group* ranks at the best
rank of its columns.

In the virtual particles, measured shape also tracks size: on a 50-cycle virtual scan sphericity and
``vs_ratio`` (a monotone function of sphericity) have Spearman rho = -0.81 with the equivalent diameter,
``rough_outer`` -0.88. These size proxies may legitimately rank between the drivers.

The rule (:func:`driver_recovery`), per condition:

Ranks count each driver group once (size's second column takes no place).

1. the two strongest drivers of the law, size and depth, each rank in the top 3 by mean |SHAP|;
2. contact (the weakest driver) ranks in the top 6 (3 drivers + 3 size proxies);
3. every attribute the law does not use and that is not tied to a driver by construction
   (orientations yaw/pitch/roll, neighbour alignment ``orien_iso``, neighbour elongation spread
   ``elong_std``) ranks below the lowest-ranked driver group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

#: The virtual beamline's drivers within one cycling condition, as attribute groups.
LAW_DRIVER_GROUPS: dict[str, tuple[str, ...]] = {
    "size": ("volume_um3", "surface_outer_um2"),
    "depth": ("z_um",),
    "contact": ("contact",),
}
#: Largest rank each driver group may take (see the module doc).
LAW_GROUP_TOP_K: dict[str, int] = {"size": 3, "depth": 3, "contact": 6}
#: Attributes the law does not use and that are not tied to a driver by geometry.
LAW_UNRELATED: tuple[str, ...] = ("yaw_deg", "pitch_deg", "roll_deg", "orien_iso", "elong_std")


def driver_recovery(
    table: pd.DataFrame,
    condition: str,
    driver_groups: Mapping[str, Sequence[str]] = LAW_DRIVER_GROUPS,
    unrelated: Sequence[str] = LAW_UNRELATED,
    top_k: int | Mapping[str, int] = LAW_GROUP_TOP_K,
) -> dict[str, Any]:
    """Check the rule of the module doc on one condition of a drivers table.

    ``top_k``: the largest rank allowed per driver group (a mapping), or one number for every group.
    Ranks count each driver group once (its best column), so ``volume_um3`` and ``surface_outer_um2``
    together take one place.

    Returns ``{"passed", "group_ranks", "unrelated_ranks", "worst_driver_rank", "best_unrelated_rank",
    "ranking", "failures"}``; ``ranking`` lists the attributes from rank 1 down.
    """
    rows = table[table["condition"] == condition].sort_values("rank")
    if rows.empty:
        raise ValueError(f"condition {condition!r} not in the drivers table (has {sorted(table['condition'].unique())})")
    # ranks count each driver group once: a group's second column (surface after volume) takes no place
    group_of = {c: g for g, cols in driver_groups.items() for c in cols}
    rank, seen, position = {}, set(), 0
    for attr in rows["attribute"]:
        group = group_of.get(attr)
        if group is not None:
            if group in seen:
                continue
            seen.add(group)
        position += 1
        rank[attr] = position
    failures = []
    group_ranks = {}
    for group, columns in driver_groups.items():
        present = [rank[c] for c in columns if c in rank]
        if not present:
            failures.append(f"driver group {group!r}: none of {list(columns)} in the table")
            continue
        group_ranks[group] = min(present)
        limit = top_k if isinstance(top_k, int) else top_k.get(group, max(top_k.values()))
        if group_ranks[group] > limit:
            failures.append(f"driver group {group!r} ranks {group_ranks[group]} > top {limit}")
    worst = max(group_ranks.values()) if group_ranks else 0
    unrelated_ranks = {a: rank[a] for a in unrelated if a in rank}
    for attr, r in unrelated_ranks.items():
        if r < worst:
            failures.append(f"unrelated attribute {attr!r} ranks {r}, above the lowest true driver (rank {worst})")
    return {
        "passed": not failures,
        "group_ranks": group_ranks,
        "unrelated_ranks": unrelated_ranks,
        "worst_driver_rank": worst,
        "best_unrelated_rank": min(unrelated_ranks.values()) if unrelated_ranks else None,
        "ranking": list(rows["attribute"]),
        "failures": failures,
    }


def virtual_scan_laws(incoming_dir, scan_ids: Sequence[str]) -> dict[str, dict | None]:
    """Per scan id, the simulator's ``damage_law`` from ``<incoming>/<scan_id>.json``, or ``None``.

    ``None`` means the scan is not a virtual scan (no sidecar, or a sidecar without a damage law), so
    there is no known law to compare with.
    """
    import json
    from pathlib import Path

    laws: dict[str, dict | None] = {}
    for scan_id in scan_ids:
        sidecar = Path(incoming_dir) / f"{scan_id}.json"
        try:
            law = json.loads(sidecar.read_text()).get("damage_law") if sidecar.exists() else None
        except (OSError, ValueError):
            law = None
        laws[scan_id] = law if isinstance(law, dict) else None
    return laws


def law_recovery_report(table: pd.DataFrame, top_k: int | Mapping[str, int] = LAW_GROUP_TOP_K) -> dict[str, Any]:
    """:func:`driver_recovery` on every cycling condition of a drivers table (``all`` when it is the only one).

    Returns ``{"passed", "conditions": {condition: driver_recovery(...)}}``; ``passed`` is None when the
    table has no condition.
    """
    conditions = [c for c in table["condition"].unique() if c != "all"] or list(table["condition"].unique())
    report = {c: driver_recovery(table, c, top_k=top_k) for c in conditions}
    return {"passed": all(r["passed"] for r in report.values()) if report else None, "conditions": report}
