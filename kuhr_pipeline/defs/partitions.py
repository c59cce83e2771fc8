"""One dynamic partition per approved application."""

import dagster as dg

applications_partitions = dg.DynamicPartitionsDefinition(name="applications")
