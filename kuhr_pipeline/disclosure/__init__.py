"""Disclosure control: the statistics cube with small-cell suppression, and the k-anonymity report."""
