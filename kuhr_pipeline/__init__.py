"""kuhr-pipeline: research extracts from KUHR, from approved spec to signed, encrypted delivery."""

__version__ = "0.1.0"
