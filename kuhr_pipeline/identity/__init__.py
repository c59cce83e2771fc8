"""Fødselsnummer validation, keyed pseudonyms and key loading."""
