"""The code location `kuhr_pipeline` (see workspace.yaml)."""

from kuhr_pipeline.defs import build_definitions

defs = build_definitions()
