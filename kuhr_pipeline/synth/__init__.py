"""The synthetic KUHR generator: a realistic source in the source contract, at register scale."""

from kuhr_pipeline.synth.generate import generate_source

__all__ = ["generate_source"]
