"""Verifying a delivery (signature, every file's size and hash, nothing missing or extra) and
decrypting it for one recipient."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

from crypt4gh.keys import get_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from kuhr_pipeline.delivery.crypt import decrypt_file
from kuhr_pipeline.delivery.hashing import sha256_file
from kuhr_pipeline.delivery.manifest import MANIFEST, RELEASES, SIGNATURE, public_fingerprint, signature_valid
from kuhr_pipeline.errors import DeliveryError, Problem


def verify_delivery(folder: Path, signer: Ed25519PublicKey) -> list[Problem]:
    """Every problem found (empty: the delivery is intact and signed by `signer`)."""
    manifest_path, signature_path = folder / MANIFEST, folder / SIGNATURE
    if not manifest_path.is_file() or not signature_path.is_file():
        return [Problem(str(folder), "(folder)", f"not a delivery (no {MANIFEST} and {SIGNATURE})")]
    data = manifest_path.read_bytes()
    problems = []
    if not signature_valid(data, signature_path.read_bytes(), signer):
        problems.append(
            Problem(
                str(signature_path),
                "(signature)",
                f"does not match the manifest for signer {public_fingerprint(signer)}",
            )
        )
    try:
        manifest = json.loads(data)
        listed = {f["path"]: f for f in manifest["files"]}
    except (ValueError, KeyError, TypeError):
        return [*problems, Problem(str(manifest_path), "(file)", "not a valid manifest")]
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    present -= {MANIFEST, SIGNATURE, RELEASES}  # the reviewers' signatures: checked by verify_releases
    for missing in sorted(set(listed) - present):
        problems.append(Problem(str(folder / missing), "(file)", "listed in the manifest but missing"))
    for extra in sorted(present - set(listed)):
        problems.append(Problem(str(folder / extra), "(file)", "not listed in the manifest"))
    for rel in sorted(set(listed) & present):
        path, entry = folder / rel, listed[rel]
        if path.stat().st_size != entry.get("bytes"):
            problems.append(
                Problem(str(path), "bytes", f"{path.stat().st_size}, the manifest says {entry.get('bytes')}")
            )
        elif sha256_file(path) != entry.get("sha256"):
            problems.append(Problem(str(path), "sha256", "differs from the manifest"))
    return problems


def _require_empty_targets(out: Path, targets: list[Path]) -> None:
    """Decrypting never overwrites: a folder that already holds any of the files is refused."""
    if out.exists() and not out.is_dir():
        raise DeliveryError.single(str(out), "--out", "is a file, not a folder", "give a new or empty folder")
    present = [t.name for t in targets if t.exists() or t.is_symlink()]
    if present:
        raise DeliveryError.single(
            str(out),
            "--out",
            f"already holds {', '.join(present)}; nothing was overwritten",
            "give a new or empty folder, or remove those files",
        )


def decrypt_delivery(folder: Path, signer: Ed25519PublicKey, secret_key_file: Path, out: Path) -> list[Path]:
    """Verify, then decrypt every data file into `out` and check it against `plaintext_sha256`."""
    problems = verify_delivery(folder, signer)
    if problems:
        raise DeliveryError(problems)
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # the library prints a warning of its own
            secret = get_private_key(str(secret_key_file), lambda: "")
    except Exception:  # the reference package raises a variety of types for a bad key file
        raise DeliveryError.single(
            str(secret_key_file),
            "--sk",
            "is not an unencrypted Crypt4GH secret key",
            "give the recipient's secret key file",
        ) from None
    manifest = json.loads((folder / MANIFEST).read_bytes())
    encrypted = [entry for entry in manifest["files"] if entry["path"].endswith(".c4gh")]
    targets = [out / Path(entry["path"]).name.removesuffix(".c4gh") for entry in encrypted]
    _require_empty_targets(out, [*targets, out / "README.md", out / "codebook.md"])
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    written = []
    for entry, target in zip(encrypted, targets, strict=True):
        rel: str = entry["path"]
        try:
            decrypt_file(folder / rel, target, secret)
        except Exception:  # wrong key or damaged data: the library's exceptions vary
            target.unlink(missing_ok=True)
            raise DeliveryError.single(
                str(folder / rel),
                "--sk",
                "cannot be decrypted with this key",
                "use the secret key of a recipient named in the manifest",
            ) from None
        if sha256_file(target) != entry["plaintext_sha256"]:
            target.unlink(missing_ok=True)
            raise DeliveryError.single(str(folder / rel), "plaintext_sha256", "decrypted data differ from the manifest")
        written.append(target)
    for doc in ("README.md", "codebook.md"):
        shutil.copyfile(folder / doc, out / doc)
    return written
