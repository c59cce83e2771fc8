"""One dynamic partition per approved application."""

import dagster as dg

applications_partitions = dg.DynamicPartitionsDefinition(name="applications")

# The cohort's scan steps read the register: their pool (a limit in dagster.yaml) keeps such scans few.
SOURCE_SCAN_POOL = "source_scan"
