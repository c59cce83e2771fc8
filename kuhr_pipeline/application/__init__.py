"""The approved application spec: model, loading, refusals and advisories."""

from kuhr_pipeline.application.load import LoadedSpec, load_spec, spec_files
from kuhr_pipeline.application.model import ApplicationSpec

__all__ = ["ApplicationSpec", "LoadedSpec", "load_spec", "spec_files"]
