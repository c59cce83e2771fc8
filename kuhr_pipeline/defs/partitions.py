"""One dynamic partition per approved application."""

import dagster as dg

applications_partitions = dg.DynamicPartitionsDefinition(name="applications")

# The cohort step reads the whole register: its pool (a limit in dagster.yaml) keeps such scans few.
SOURCE_SCAN_POOL = "source_scan"
