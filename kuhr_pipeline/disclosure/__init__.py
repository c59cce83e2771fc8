"""Disclosure control: the statistics cube with small-cell suppression, and the k-anonymity report."""

DISCLOSURE_REPORT = "disclosure_report.json"  # kept in staging by the extract or the statistics check; delivered
