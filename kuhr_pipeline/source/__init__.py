"""Reading the KUHR source extract: the contract's schema and streaming scans."""

from kuhr_pipeline.source.scan import Source, open_source, scan

__all__ = ["Source", "open_source", "scan"]
