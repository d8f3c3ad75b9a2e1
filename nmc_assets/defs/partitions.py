"""Partition definitions shared by assets, sensors and schedules."""

import dagster as dg

#: One partition per scan in the drop folder; registered by the ``incoming_scans`` sensor.
scan_partitions = dg.DynamicPartitionsDefinition(name="scan")
