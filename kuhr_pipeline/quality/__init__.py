"""Validation: expectation suites built from files and the catalogue, run with Great Expectations."""
