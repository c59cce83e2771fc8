"""The extract: approved variables, generalised, in the spec's order."""
