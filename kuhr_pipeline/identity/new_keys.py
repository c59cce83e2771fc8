"""`kuhr-pipeline keys init`: new pseudonym master key, signing key pair, and demo recipient keys."""

from __future__ import annotations

import secrets
from pathlib import Path

from crypt4gh.keys import c4gh
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kuhr_pipeline.delivery import crypt as _quiet_crypt4gh  # noqa: F401  (its logger: set there, once)
from kuhr_pipeline.errors import KeyFileError, KeysExist, SignerKeyError
from kuhr_pipeline.identity.keys import read_key_bytes, write_secret_file

MASTER_KEY_BYTES = 32


def signing_public_path(signing_key: Path) -> Path:
    return (
        signing_key.with_name(signing_key.name + ".pub")
        if signing_key.suffix != ".pem"
        else signing_key.with_suffix(".pub")
    )


def init_keys(master: Path, signing: Path, demo_recipient: str | None, recipient_dir: Path) -> list[Path]:
    """Write the keys that do not exist yet; refuses (KeysExist, exit 1) if any already exists."""
    targets = [master, signing, signing_public_path(signing)]
    if demo_recipient:
        targets += [recipient_dir / f"{demo_recipient}.sec", recipient_dir / f"{demo_recipient}.pub"]
    existing = [t for t in targets if t.exists()]
    if existing:
        raise KeysExist.single(
            str(existing[0]),
            "keys init",
            "exists already; keys are never overwritten",
            "move it away first if you really mean to replace it",
        )
    write_secret_file(master, (secrets.token_bytes(MASTER_KEY_BYTES).hex() + "\n").encode("ascii"))
    private = Ed25519PrivateKey.generate()
    write_secret_file(
        signing,
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
    signing_public_path(signing).write_bytes(public_pem(private.public_key()))
    if demo_recipient:
        recipient_dir.mkdir(parents=True, exist_ok=True)
        c4gh.generate(
            str(recipient_dir / f"{demo_recipient}.sec"),
            str(recipient_dir / f"{demo_recipient}.pub"),
            passphrase=None,
            comment=f"DEMO ONLY {demo_recipient}".encode(),
        )
        (recipient_dir / f"{demo_recipient}.sec").chmod(0o600)
    return targets


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_signer_public(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(read_key_bytes(path, "--signer-pub", secret=False))
    except KeyFileError as error:
        raise SignerKeyError(error.problems) from None
    except ValueError:
        raise SignerKeyError.single(str(path), "--signer-pub", "is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SignerKeyError.single(str(path), "--signer-pub", "is not an Ed25519 public key")
    return key
