"""Keyed pseudonyms, exactly as the delivery contract documents them.

    domain key  = HKDF-SHA256(ikm=master key, salt=b"kuhr-pipeline/pseudonym/v1", info=domain, length=32)
    pseudonym   = HMAC-SHA256(domain key, id as ASCII digits).hexdigest()[:32]

`domain` is the spec's linkage_domain for patients and linkage_domain + "/behandler" for
practitioners. Keyed because an unkeyed hash of a fødselsnummer is reversed by brute force in
about a second (≈ 300 000 valid numbers per birth year). HKDF comes from `cryptography`; the
per-id HMAC uses the standard library's one-shot `hmac.digest` (OpenSSL), several times faster
per call than building an HMAC object, which matters at millions of ids.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from typing import Protocol

import numpy as np
import pyarrow as pa
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SALT = b"kuhr-pipeline/pseudonym/v1"
PSEUDONYM_HEX_CHARS = 32


def domain_key(master_key: bytes, domain: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=SALT, info=domain.encode("utf-8")).derive(master_key)


class PatientPseudonyms(Protocol):
    """What pass 2 asks of a patient pseudonym form: the pseudonyms of valid ids held as int64."""

    def fnr_numbers(self, numbers: np.ndarray) -> pa.Array: ...


class Pseudonymiser:
    """Turns ids of one linkage domain into pseudonyms. Holds the derived key, never prints it."""

    __slots__ = ("_key",)

    def __init__(self, master_key: bytes, domain: str) -> None:
        self._key = domain_key(master_key, domain)

    def __repr__(self) -> str:
        return "Pseudonymiser(<key hidden>)"

    def many(self, identifiers: Iterable[str]) -> list[str]:
        key = self._key
        return [hmac.digest(key, i.encode("utf-8"), "sha256").hex()[:PSEUDONYM_HEX_CHARS] for i in identifiers]

    def fnr_numbers(self, numbers: np.ndarray) -> pa.Array:
        """Pseudonyms of valid fødselsnummer held as int64 (see identity.fodselsnummer)."""
        key = self._key
        out = [hmac.digest(key, b"%011d" % n, "sha256").hex()[:PSEUDONYM_HEX_CHARS] for n in numbers.tolist()]
        return pa.array(out, pa.string())


FINGERPRINT_PREFIX = b"kuhr-pipeline/key-fingerprint/v1"
ALGORITHMS = {
    "hmac": "HMAC-SHA256(HKDF-SHA256(master key, salt 'kuhr-pipeline/pseudonym/v1', info linkage domain), "
    "fødselsnummer as 11 ASCII digits), first 32 hex characters",
    "lopenr": "the project's løpenummer from its population file (population_file_sha256)",
}


def key_fingerprint(master_key: bytes, domain: str) -> str:
    """A name for the domain's derived key that reveals nothing of it: SHA-256 over a fixed prefix
    and the derived key (never the master key), 32 hex characters. Equal fingerprints: equal keys."""
    return hashlib.sha256(FINGERPRINT_PREFIX + domain_key(master_key, domain)).hexdigest()[:32]


def pseudonym_provenance(
    form: str, linkage_domain: str, master_key: bytes, population_sha256: str | None = None
) -> dict[str, str]:
    """What a manifest says of its patient pseudonyms, so that a later re-keying knows what it
    starts from: the form, the linkage domain, the algorithm and the key's fingerprint."""
    return {
        "form": form,
        "linkage_domain": linkage_domain,
        "algorithm": ALGORITHMS[form],
        "key_fingerprint": key_fingerprint(master_key, patient_domain(linkage_domain)),
        **({"population_file_sha256": population_sha256} if form == "lopenr" and population_sha256 else {}),
    }


def patient_domain(linkage_domain: str) -> str:
    return linkage_domain


def practitioner_domain(linkage_domain: str) -> str:
    return f"{linkage_domain}/behandler"
