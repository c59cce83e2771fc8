"""Registered reviewers and their signatures: who may release a prepared package.

A deployment registers its reviewers as a folder (`KUHR_REVIEWERS`) of Ed25519 public keys,
`<name>.pub` (PEM); the private key stays with the reviewer. A release is the reviewer's
signature over the package's manifest SHA-256 with name, key fingerprint, time and note: kept in
the package as `releases.json` (so a recipient can check it) and in the audit log.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kuhr_pipeline.delivery.manifest import MANIFEST, RELEASES, public_fingerprint
from kuhr_pipeline.errors import KeyFileError, KuhrError, Problem
from kuhr_pipeline.identity.keys import read_key_bytes, write_secret_file

REVIEWERS_VARIABLE = "KUHR_REVIEWERS"
REQUIRED_REVIEWS_VARIABLE = "KUHR_REQUIRED_REVIEWS"
REVIEWER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")  # also a file name
SIGNED_FIELDS = ("application_id", "delivery_id", "manifest_sha256", "reviewer", "key_fingerprint", "time", "note")


class ReleaseRefused(KuhrError):
    """A release or rejection that may not happen: nothing moved (exit 2)."""


@dataclass(frozen=True)
class Reviewer:
    name: str
    key_fingerprint: str
    public_key: Ed25519PublicKey

    def as_json(self) -> dict[str, str]:
        return {"name": self.name, "key_fingerprint": self.key_fingerprint}


def reviewers_dir() -> Path | None:
    value = os.environ.get(REVIEWERS_VARIABLE)
    return Path(value) if value else None


def required_reviews() -> int:
    """How many distinct reviewers release a package: KUHR_REQUIRED_REVIEWS, never less than one."""
    value = os.environ.get(REQUIRED_REVIEWS_VARIABLE, "1").strip() or "1"
    if not value.isdigit():
        raise KuhrError.single(
            f"${REQUIRED_REVIEWS_VARIABLE}",
            REQUIRED_REVIEWS_VARIABLE,
            f"is {value!r}, not a number",
            "set it to 1 or more",
        )
    return max(1, int(value))


def new_reviewer(name: str, out: Path) -> tuple[Path, Path]:
    """`keys reviewer NAME --out DIR`: DIR/NAME.key (0600, stays with the reviewer) and DIR/NAME.pub
    (goes into the deployment's KUHR_REVIEWERS folder)."""
    if not REVIEWER_NAME.fullmatch(name):
        raise KuhrError.single(
            name, "NAME", "is not a reviewer name", "letters, digits and '._@-', starting with a letter or digit, ≤ 64"
        )
    private, public = out / f"{name}.key", out / f"{name}.pub"
    for path in (private, public):
        if path.exists():
            raise KeyFileError.single(str(path), "keys reviewer", "exists already; keys are never overwritten")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    write_secret_file(private, pem)
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private, public


def registered_reviewers(folder: Path | None) -> dict[str, Reviewer]:
    """The deployment's reviewers by key fingerprint. A file that is not an Ed25519 public key is
    an error of the deployment (named), never skipped."""
    if folder is None or not folder.is_dir():
        raise KeyFileError.single(
            str(folder or f"${REVIEWERS_VARIABLE}"),
            REVIEWERS_VARIABLE,
            "is not a folder of registered reviewers",
            "point KUHR_REVIEWERS at the folder of reviewers' <name>.pub keys (kuhr-pipeline keys reviewer)",
        )
    found: dict[str, Reviewer] = {}
    for path in sorted(folder.glob("*.pub")):
        try:
            key = serialization.load_pem_public_key(read_key_bytes(path, REVIEWERS_VARIABLE, secret=False))
        except ValueError:
            key = None
        if not isinstance(key, Ed25519PublicKey) or not REVIEWER_NAME.fullmatch(path.stem):
            raise KeyFileError.single(str(path), REVIEWERS_VARIABLE, "is not a reviewer's Ed25519 public key (PEM)")
        fingerprint = public_fingerprint(key)
        if fingerprint in found:
            raise KeyFileError.single(
                str(path),
                REVIEWERS_VARIABLE,
                f"holds the same key as {found[fingerprint].name}.pub",
                "one key per person",
            )
        found[fingerprint] = Reviewer(path.stem, fingerprint, key)
    return found


def reviewer_key(key_file: Path, registered: dict[str, Reviewer]) -> tuple[Reviewer, Ed25519PrivateKey]:
    """The reviewer whose private key this is; refused when it is no registered reviewer's."""
    raw = read_key_bytes(key_file, "--key")
    try:
        key = serialization.load_pem_private_key(raw, password=None)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, Ed25519PrivateKey):
        raise ReleaseRefused.single(str(key_file), "--key", "is not an unencrypted Ed25519 private key (PEM)")
    reviewer = registered.get(public_fingerprint(key.public_key()))
    if reviewer is None:
        raise ReleaseRefused.single(
            str(key_file),
            "--key",
            f"is not a registered reviewer's key ({public_fingerprint(key.public_key())})",
            "use your own reviewer key, or have it registered in KUHR_REVIEWERS",
        )
    return reviewer, key


def _signed_bytes(release: dict[str, Any]) -> bytes:
    body = {name: release.get(name) for name in SIGNED_FIELDS}
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def sign_release(key: Ed25519PrivateKey, release: dict[str, Any]) -> str:
    return base64.b64encode(key.sign(_signed_bytes(release))).decode("ascii")


def write_releases(folder: Path, releases: list[dict[str, Any]]) -> None:
    """`releases.json`, replaced whole (written aside, then renamed), owner-only."""
    text = json.dumps({"releases": releases}, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    aside = folder / f".{RELEASES}.tmp"
    aside.unlink(missing_ok=True)
    write_secret_file(aside, text.encode("utf-8"))
    aside.replace(folder / RELEASES)


def verify_releases(folder: Path, registered: dict[str, Reviewer], required: int) -> list[Problem]:
    """The package's releases: each signed by a registered reviewer over this manifest, by at
    least `required` distinct reviewers (names and keys). Empty: released as the deployment asks."""
    path = folder / RELEASES
    try:
        releases = json.loads(path.read_text(encoding="utf-8"))["releases"]
        manifest = json.loads((folder / MANIFEST).read_bytes())
    except FileNotFoundError:
        return [Problem(str(path), "(file)", "is missing: the package was never released by a reviewer")]
    except (ValueError, KeyError, TypeError):
        return [Problem(str(path), "(file)", "is not a list of releases (edited)")]
    manifest_sha = hashlib.sha256((folder / MANIFEST).read_bytes()).hexdigest()
    problems: list[Problem] = []
    names: set[str] = set()
    keys: set[str] = set()
    for number, release in enumerate(releases if isinstance(releases, list) else [], start=1):
        field = f"release {number}"
        reviewer = registered.get(str(release.get("key_fingerprint")))
        if reviewer is None or reviewer.name != release.get("reviewer"):
            problems.append(Problem(str(path), field, "is not by a registered reviewer"))
            continue
        try:
            reviewer.public_key.verify(
                base64.b64decode(str(release.get("signature")), validate=True), _signed_bytes(release)
            )
        except (InvalidSignature, ValueError):
            problems.append(Problem(str(path), field, f"its signature by {reviewer.name} does not match (altered)"))
            continue
        if (release.get("manifest_sha256"), release.get("delivery_id"), release.get("application_id")) != (
            manifest_sha,
            manifest.get("delivery_id"),
            manifest.get("application_id"),
        ):
            problems.append(Problem(str(path), field, f"{reviewer.name} released another manifest"))
            continue
        names.add(reviewer.name)
        keys.add(reviewer.key_fingerprint)
    if not problems and min(len(names), len(keys)) < required:
        problems.append(
            Problem(
                str(path), "(file)", f"holds {min(len(names), len(keys))} valid release(s); {required} are required"
            )
        )
    return problems
