"""The delivery audit log: one signed, hash-chained JSON line per published delivery.

Each line holds `prev_sha256`, the SHA-256 of the previous line's bytes (the first line: 64
zeros), so an edited, removed or reordered line breaks the chain; and `signature`, an Ed25519
signature by the signing key over the line's canonical bytes without that field, so no one
without the key can forge a line or recompute the chain (the last line included). `verify_audit`
checks both, and ties the log to the folders: each line's `manifest_sha256` matches its
delivery's manifest, every delivery folder has its line and every line its folder.

A line with `"event": "chain_break"` starts a new chain after a log was lost or damaged
(`kuhr-pipeline audit init --accept-existing`): it records the old log's hash and the delivery
folders that existed then, which count as accounted for.
"""

from __future__ import annotations

import base64
import fcntl
import getpass
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kuhr_pipeline.delivery.folders import published_deliveries
from kuhr_pipeline.delivery.manifest import MANIFEST, public_fingerprint
from kuhr_pipeline.errors import Problem

GENESIS = "0" * 64
AUDIT_LOG = "audit.jsonl"
CHAIN_BREAK = "chain_break"
ESTIMATE = "estimate"  # a feasibility estimate read the register; nothing was delivered


def _canonical(record: dict[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines() if path.exists() else []


def append_audit(path: Path, record: dict[str, Any], key: Ed25519PrivateKey) -> None:
    """Append one signed record, chained to the last line; locked so concurrent runs cannot interleave."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            lines = _lines(path)
            body = {
                **record,
                "prev_sha256": hashlib.sha256(lines[-1]).hexdigest() if lines else GENESIS,
                "signer_key_fingerprint": public_fingerprint(key.public_key()),
            }
            signature = base64.b64encode(key.sign(_canonical(body))).decode("ascii")
            line = json.dumps({**body, "signature": signature}, sort_keys=True, ensure_ascii=False)
            f.write(line.encode("utf-8") + b"\n")
            f.flush()
            os.fsync(f.fileno())
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ran_by() -> str:
    """Who runs a delivery or estimate: KUHR_RAN_BY when the deployment names the person (the UI
    user, say), else the operating-system user."""
    named = os.environ.get("KUHR_RAN_BY", "").strip()
    if named:
        return named[:200]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def record_estimate(root: Path, key: Ed25519PrivateKey, application_id: str, spec_sha256: str, time: str) -> None:
    """An estimate reads the register: the log says who estimated which spec, and when."""
    record = {"application_id": application_id, "spec_sha256": spec_sha256, "time": time, "ran_by": ran_by()}
    append_audit(root / AUDIT_LOG, {"event": ESTIMATE, **record}, key)


@dataclass(frozen=True)
class AuditLine:
    number: int
    record: dict[str, Any]


def read_audit(path: Path, signer: Ed25519PublicKey) -> tuple[list[AuditLine], list[Problem]]:
    """The log's lines and what is wrong with them on their own (JSON, chain, signature)."""
    where, ours = str(path), public_fingerprint(signer)
    lines, problems = [], []
    prev = GENESIS
    for number, raw in enumerate(_lines(path), start=1):
        field = f"line {number}"
        try:
            record = json.loads(raw)
            if not isinstance(record, dict):
                raise ValueError("not an object")
        except ValueError:
            problems.append(Problem(where, field, "is not a JSON object (edited)"))
            prev = hashlib.sha256(raw).hexdigest()
            continue
        if record.get("prev_sha256") != prev:
            problems.append(
                Problem(where, field, "does not chain to the line before it (edited, removed or reordered)")
            )
        prev = hashlib.sha256(raw).hexdigest()
        if not _signed_by(record, signer):
            by = record.get("signer_key_fingerprint")
            text = (
                f"is signed by another key ({by}), not the signer {ours}"
                if by and by != ours
                else f"its signature does not match its content for the signer {ours} (forged or edited)"
            )
            problems.append(Problem(where, field, text))
        lines.append(AuditLine(number, record))
    return lines, problems


def _signed_by(record: dict[str, Any], signer: Ed25519PublicKey) -> bool:
    body = {k: v for k, v in record.items() if k != "signature"}
    try:
        signer.verify(base64.b64decode(str(record.get("signature", "")), validate=True), _canonical(body))
    except (InvalidSignature, ValueError):
        return False
    return True


def accounted_for(lines: list[AuditLine]) -> tuple[dict[tuple[str, str], AuditLine], set[tuple[str, str]]]:
    """The (application_id, delivery_id) of each delivery line, and those a chain break accepted."""
    delivered: dict[tuple[str, str], AuditLine] = {}
    accepted: set[tuple[str, str]] = set()
    for line in lines:
        if line.record.get("event") == CHAIN_BREAK:
            accepted.update((str(a), str(d)) for a, d in line.record.get("accepted", []))
        elif line.record.get("event") != ESTIMATE:  # an estimate delivers nothing
            delivered[(str(line.record.get("application_id")), str(line.record.get("delivery_id")))] = line
    return delivered, accepted


def verify_audit(path: Path, deliveries_root: Path, signer: Ed25519PublicKey) -> list[Problem]:
    """Everything wrong with the log and its ties to the delivery folders (empty: intact)."""
    folders = published_deliveries(deliveries_root)
    if not path.exists():
        if not folders:
            return []
        return [
            Problem(
                str(path),
                "(file)",
                f"is missing while {len(folders)} delivery folders exist (first: {folders[0]})",
                "restore the log from backup, or start a new chain with `kuhr-pipeline audit init --accept-existing`",
            )
        ]
    lines, problems = read_audit(path, signer)
    delivered, accepted = accounted_for(lines)
    for (application_id, delivery_id), line in delivered.items():
        manifest = deliveries_root / application_id / delivery_id / MANIFEST
        if not manifest.is_file():
            problems.append(
                Problem(str(path), f"line {line.number}", f"its delivery folder {manifest.parent} is missing")
            )
        elif hashlib.sha256(manifest.read_bytes()).hexdigest() != line.record.get("manifest_sha256"):
            problems.append(Problem(str(path), f"line {line.number}", f"manifest_sha256 does not match {manifest}"))
    accounted = set(delivered) | accepted
    for folder in folders:
        if (folder.parent.name, folder.name) not in accounted:
            problems.append(Problem(str(folder), "(folder)", f"delivery has no line in {path}"))
    return problems


def break_chain(path: Path, deliveries_root: Path, key: Ed25519PrivateKey, reason: str) -> Path | None:
    """Start a new signed chain that records the break: the old log (if any) is kept beside it
    as `audit.jsonl.broken-<sha256 prefix>`, and every existing delivery folder is accepted."""
    kept = None
    old_sha = None
    if path.exists():
        data = path.read_bytes()
        old_sha = hashlib.sha256(data).hexdigest()
        kept = path.with_name(f"{path.name}.broken-{old_sha[:16]}")
        path.replace(kept)
    accepted = [[f.parent.name, f.name] for f in published_deliveries(deliveries_root)]
    append_audit(
        path, {"event": CHAIN_BREAK, "reason": reason, "previous_log_sha256": old_sha, "accepted": accepted}, key
    )
    return kept
