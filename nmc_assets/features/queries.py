"""Example SQL over the catalog (README; tested on a small catalog). Run: ``nmc-assets sql "<query>"``."""

#: Mean damage per cycle count and 5-um depth bin (z along the electrode thickness), cut particles excluded.
DAMAGE_BY_DEPTH_AND_CYCLES = """
SELECT cycles,
       floor(z_um / 5) * 5          AS depth_from_um,
       count(*)                     AS particles,
       round(avg(damage), 4)        AS mean_damage,
       round(stddev_samp(damage), 4) AS sd_damage
FROM particle_features
WHERE NOT touches_border
GROUP BY cycles, depth_from_um
ORDER BY cycles, depth_from_um
""".strip()

#: The 10 most damaged whole particles (not cut by the scan border) with their own contact and the mean
#: contact of their 6 nearest neighbours.
MOST_DAMAGED_WITH_NEIGHBOUR_CONTACT = """
WITH top AS (
    SELECT scan_id, particle_id, damage, contact, volume_um3, x_um, y_um, z_um
    FROM particle_features
    WHERE NOT touches_border
    ORDER BY damage DESC, scan_id, particle_id
    LIMIT 10
), pairs AS (
    SELECT t.*, n.contact AS neighbour_contact,
           row_number() OVER (PARTITION BY t.scan_id, t.particle_id
                              ORDER BY pow(n.x_um - t.x_um, 2) + pow(n.y_um - t.y_um, 2) + pow(n.z_um - t.z_um, 2)) AS k
    FROM top t JOIN particle_features n ON n.scan_id = t.scan_id AND n.particle_id <> t.particle_id
)
SELECT scan_id, particle_id,
       round(damage, 3)                 AS damage,
       round(volume_um3, 1)             AS volume_um3,
       round(contact, 3)                AS contact,
       round(avg(neighbour_contact), 3) AS neighbours_mean_contact,
       count(*)                         AS neighbours
FROM pairs
WHERE k <= 6
GROUP BY scan_id, particle_id, damage, volume_um3, contact
ORDER BY damage DESC, scan_id, particle_id
""".strip()

#: Particles per scan, with every known scan (also those without features yet) and its status.
PARTICLES_PER_SCAN = """
SELECT s.scan_id, s.cycles, s.status, count(p.particle_id) AS particles
FROM scans s LEFT JOIN particle_features p USING (scan_id)
GROUP BY s.scan_id, s.cycles, s.status
ORDER BY s.scan_id
""".strip()

EXAMPLE_QUERIES = {
    "damage_by_depth_and_cycles": DAMAGE_BY_DEPTH_AND_CYCLES,
    "most_damaged_with_neighbour_contact": MOST_DAMAGED_WITH_NEIGHBOUR_CONTACT,
    "particles_per_scan": PARTICLES_PER_SCAN,
}
