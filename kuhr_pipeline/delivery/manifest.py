"""The manifest: what a delivery holds, as exact bytes that are signed with Ed25519."""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from kuhr_pipeline.delivery.hashing import fingerprint

MANIFEST = "manifest.json"
SIGNATURE = "manifest.json.sig"
RELEASES = "releases.json"  # the reviewers' signatures over the manifest's SHA-256, added at release


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def sign(data: bytes, key: Ed25519PrivateKey) -> bytes:
    return base64.b64encode(key.sign(data)) + b"\n"


def signature_valid(data: bytes, signature_b64: bytes, public_key: Ed25519PublicKey) -> bool:
    try:
        public_key.verify(base64.b64decode(signature_b64.strip(), validate=True), data)
    except (InvalidSignature, ValueError):
        return False
    return True


def public_fingerprint(public_key: Ed25519PublicKey) -> str:
    return fingerprint(public_key.public_bytes(Encoding.Raw, PublicFormat.Raw))
