"""The delivery audit log: one signed, hash-chained JSON line per event of a package's life:
`prepared` (made, waiting in `.pending`), `released` (a reviewer's release; the last one needed
moves it into place), `rejected` (removed); `estimate` (a feasibility estimate read the register).

Each line holds `prev_sha256`, the SHA-256 of the previous line's bytes (the first line: 64
zeros), so an edited, removed or reordered line breaks the chain; and `signature`, an Ed25519
signature by the signing key over the line's canonical bytes without that field, so no one
without the key can forge a line or recompute the chain (the last line included). `verify_audit`
checks both, and ties the log to the folders: each package is where its state says (released,
pending, or nowhere when rejected) with the manifest its lines name, and every folder has its lines.

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
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kuhr_pipeline import settings
from kuhr_pipeline.delivery.folders import (
    pending_deliveries,
    pending_folder,
    published_deliveries,
    released_folder,
)
from kuhr_pipeline.delivery.manifest import MANIFEST, public_fingerprint
from kuhr_pipeline.delivery.verify import verify_delivery
from kuhr_pipeline.errors import KuhrError, Problem

GENESIS = "0" * 64
AUDIT_LOG = "audit.jsonl"
CHAIN_BREAK = "chain_break"
ESTIMATE = "estimate"  # a feasibility estimate read the register; nothing was delivered
PREPARED = "prepared"  # a package made and waiting in `.pending` for its reviewers
RELEASED = "released"  # a reviewer released it (`published`: the last review needed; it moved into place)
REJECTED = "rejected"  # a reviewer rejected it; the package was removed
DELIVERY = "delivery"  # a delivery made before two-phase release (or a dummy): released as it was made
FIX = "restore audit.jsonl from backup, or start a new chain with `kuhr-pipeline audit init --accept-existing`"


class AuditLogError(KuhrError):
    """The audit log is missing or damaged beside existing deliveries: nothing is delivered (exit 3)."""

    exit_code = 3


def _canonical(record: dict[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines() if path.exists() else []


Link = Callable[[int, str], dict[str, Any]]  # (the line's sequence, the previous line's hash) → fields


def append_audit(path: Path, record: dict[str, Any], key: Ed25519PrivateKey, link: Link | None = None) -> None:
    """Append one signed record, chained to the last line; locked so concurrent runs cannot
    interleave. `link` is called under the lock with the new line's sequence number and the
    previous line's hash (a package's manifest names both) and returns fields for the line. The
    log's new head is then kept apart, signed, in DAGSTER_HOME (`keep_head`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            lines = _lines(path)
            sequence, previous = len(lines) + 1, hashlib.sha256(lines[-1]).hexdigest() if lines else GENESIS
            body = {
                **record,
                **(link(sequence, previous) if link else {}),
                "sequence": sequence,
                "prev_sha256": previous,
                "signer_key_fingerprint": public_fingerprint(key.public_key()),
            }
            signature = base64.b64encode(key.sign(_canonical(body))).decode("ascii")
            line = json.dumps({**body, "signature": signature}, sort_keys=True, ensure_ascii=False).encode("utf-8")
            f.write(line + b"\n")
            f.flush()
            os.fsync(f.fileno())
            keep_head(path, sequence, hashlib.sha256(line).hexdigest(), key)
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def head_file(log: Path) -> Path:
    """Where the log's signed head is kept: in DAGSTER_HOME, apart from the deliveries folder, so
    that dropping lines from the log's end (with their folders) is seen."""
    name = hashlib.sha256(str(log.resolve()).encode("utf-8")).hexdigest()[:16]
    return settings.dagster_home() / "audit-heads" / f"{name}.json"


def keep_head(log: Path, sequence: int, line_sha256: str, key: Ed25519PrivateKey) -> None:
    body = {"log": str(log.resolve()), "sequence": sequence, "line_sha256": line_sha256}
    signed = {**body, "signature": base64.b64encode(key.sign(_canonical(body))).decode("ascii")}
    target = head_file(log)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    aside = target.with_name(f".{target.name}.{os.getpid()}")
    aside.write_text(json.dumps(signed, sort_keys=True) + "\n", encoding="utf-8")
    aside.replace(target)


def head_problems(
    log: Path, lines: list[bytes], signer: Ed25519PublicKey, expected: tuple[int, str] | None
) -> list[Problem]:
    """The log against its head: the one kept in DAGSTER_HOME (when there is one, signed by the
    signer), and the one the operator expects (`audit verify --expect-head N:SHA256`)."""
    heads: list[tuple[str, int, str]] = []
    kept = head_file(log)
    if kept.is_file():
        try:
            head = json.loads(kept.read_text(encoding="utf-8"))
            body = {k: v for k, v in head.items() if k != "signature"}
            signer.verify(base64.b64decode(str(head.get("signature", "")), validate=True), _canonical(body))
            heads.append((f"the head kept in {kept}", int(head["sequence"]), str(head["line_sha256"])))
        except (ValueError, KeyError, TypeError, InvalidSignature):
            return [Problem(str(kept), "(head)", "is not a head signed by this signer (edited)")]
    if expected is not None:
        heads.append(("the expected head", *expected))
    problems = []
    for what, sequence, line_sha in heads:
        if sequence > len(lines):
            problems.append(
                Problem(
                    str(log),
                    f"line {sequence}",
                    f"is missing: the log ends at line {len(lines)}, {what} names "
                    f"line {sequence} (lines were removed from its end)",
                )
            )
        elif hashlib.sha256(lines[sequence - 1]).hexdigest() != line_sha:
            problems.append(Problem(str(log), f"line {sequence}", f"is not the line {what} names (rewritten)"))
    return problems


RAN_BY_VARIABLE = "KUHR_RAN_BY"
_NAME = re.compile(r"[\w.\-@ ]{1,64}")  # letters of any alphabet (Bjørn), digits, `_.-@` and spaces


def ran_by() -> str:
    """Who runs a delivery or estimate: KUHR_RAN_BY when the deployment names the person (the UI
    user, say), else the operating-system user. A name only (letters, digits, `.-_@ `, at most
    64): anything else could forge a line of `history`, so it is refused, never trimmed."""
    named = os.environ.get(RAN_BY_VARIABLE)
    if named is None:
        try:
            named = getpass.getuser()
        except (KeyError, OSError):
            named = f"uid {os.getuid()}"
    if not _NAME.fullmatch(named):
        raise KuhrError.single(
            f"${RAN_BY_VARIABLE}",
            RAN_BY_VARIABLE,
            f"is not a name ({len(named)} characters; letters, digits, '.-_@' and spaces, at most 64)",
            "set KUHR_RAN_BY to the data manager's name or user id",
        )
    return named


def record_estimate(root: Path, key: Ed25519PrivateKey, application_id: str, spec_sha256: str, time: str) -> None:
    """An estimate reads the register: the log says who estimated which spec, and when."""
    record = {"application_id": application_id, "spec_sha256": spec_sha256, "time": time, "ran_by": ran_by()}
    append_audit(root / AUDIT_LOG, {"event": ESTIMATE, **record}, key)


def audit_records(path: Path) -> list[dict[str, Any]]:
    """The log's records as plain JSON (a line that does not parse is skipped: judging the log is
    `audit verify`'s), for counting and listing."""
    out = []
    for raw in _lines(path):
        try:
            record = json.loads(raw)
        except ValueError:
            continue
        if isinstance(record, dict):
            out.append(record)
    return out


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


@dataclass
class Ledger:
    """One package's story in the log: its `prepared` line, its reviews, and how it ended."""

    prepared: AuditLine | None = None
    released: list[AuditLine] = field(default_factory=list)
    rejected: AuditLine | None = None
    delivered: AuditLine | None = None  # the line of a delivery made before two-phase release

    @property
    def state(self) -> str:
        """prepared (waiting for its reviewers), released, or rejected."""
        if self.rejected is not None:
            return REJECTED
        if self.delivered is not None or any(line.record.get("published") for line in self.released):
            return RELEASED
        return PREPARED

    @property
    def last(self) -> AuditLine:
        lines = [line for line in (self.prepared, self.rejected, self.delivered, *self.released) if line]
        return max(lines, key=lambda line: line.number)

    @property
    def reviews(self) -> list[dict[str, Any]]:
        """The reviewers' signed releases so far, oldest first (what `releases.json` holds)."""
        return [dict(line.record["review"]) for line in self.released]

    @property
    def manifest_sha256(self) -> str | None:
        first = self.prepared or self.delivered
        return str(first.record.get("manifest_sha256")) if first else None


def ledgers(lines: list[AuditLine]) -> tuple[dict[tuple[str, str], Ledger], set[tuple[str, str]]]:
    """Each package's ledger by (application_id, delivery_id), and the released folders a chain
    break accepted."""
    found: dict[tuple[str, str], Ledger] = {}
    accepted: set[tuple[str, str]] = set()
    for line in lines:
        event = line.record.get("event")
        if event == CHAIN_BREAK:
            accepted.update((str(a), str(d)) for a, d in line.record.get("accepted", []))
            continue
        if event == ESTIMATE:  # an estimate delivers nothing
            continue
        ledger = found.setdefault(
            (str(line.record.get("application_id")), str(line.record.get("delivery_id"))), Ledger()
        )
        if event == PREPARED:
            ledger.prepared = line
        elif event == RELEASED:
            ledger.released.append(line)
        elif event == REJECTED:
            ledger.rejected = line
        else:
            ledger.delivered = line
    return found, accepted


def _linked(manifest: Path, prepared: AuditLine) -> bool:
    """A package's manifest names its `prepared` line: its sequence number and the hash of the
    line before it (manifests made before the link have none, and pass)."""
    link = json.loads(manifest.read_bytes()).get("audit")
    if link is None:
        return "sequence" not in prepared.record
    return bool(link == {"sequence": prepared.number, "previous_sha256": prepared.record.get("prev_sha256")})


def verify_audit(
    path: Path, deliveries_root: Path, signer: Ed25519PublicKey, expected_head: tuple[int, str] | None = None
) -> list[Problem]:
    """Everything wrong with the log and its ties to the delivery folders (empty: intact): a
    released package is in its released folder, a prepared one in `.pending`, a rejected one
    nowhere; every folder has its lines."""
    folders = published_deliveries(deliveries_root)
    waiting = pending_deliveries(deliveries_root)
    if not path.exists():
        if not folders and not waiting:
            return []
        first = (folders or waiting)[0]
        return [
            Problem(
                str(path),
                "(file)",
                f"is missing while {len(folders) + len(waiting)} delivery folders exist (first: {first})",
                "restore the log from backup, or start a new chain with `kuhr-pipeline audit init --accept-existing`",
            )
        ]
    lines, problems = read_audit(path, signer)
    problems += head_problems(path, _lines(path), signer, expected_head)
    found, accepted = ledgers(lines)
    for (application_id, delivery_id), ledger in found.items():
        where = f"line {ledger.last.number}"
        released = released_folder(deliveries_root, application_id, delivery_id)
        pending = pending_folder(deliveries_root, application_id, delivery_id)
        expected = {RELEASED: released, PREPARED: pending}.get(ledger.state)
        for folder in (released, pending):
            if folder != expected and (folder / MANIFEST).exists():
                problems.append(Problem(str(path), where, f"{delivery_id} is {ledger.state}, but {folder} exists"))
        if expected is None:
            continue
        manifest = expected / MANIFEST
        if not manifest.is_file():
            problems.append(Problem(str(path), where, f"its delivery folder {expected} is missing"))
        elif hashlib.sha256(manifest.read_bytes()).hexdigest() != ledger.manifest_sha256:
            problems.append(Problem(str(path), where, f"manifest_sha256 does not match {manifest}"))
        elif ledger.prepared is not None and not _linked(manifest, ledger.prepared):
            problems.append(
                Problem(str(manifest), "audit", f"does not name its prepared line {ledger.prepared.number}")
            )
    for folder in folders:
        key = (folder.parent.name, folder.name)
        if key not in accepted and (key not in found or found[key].state != RELEASED):
            problems.append(Problem(str(folder), "(folder)", f"delivery has no release line in {path}"))
    for folder in waiting:
        key = (folder.parent.parent.name, folder.name)
        if key not in found or found[key].prepared is None:
            problems.append(Problem(str(folder), "(folder)", f"pending package has no prepared line in {path}"))
    return problems


def require_broken_log(deliveries_root: Path, signer: Ed25519PublicKey) -> None:
    """A new chain only when the log is lost or damaged (it would reset `history` and the one
    gate), and it accepts only whole deliveries signed by this signer: a folder that does not
    verify, or whose manifest names another application or delivery id, is named and refused."""
    log = deliveries_root / AUDIT_LOG
    if log.exists() and not verify_audit(log, deliveries_root, signer):
        raise KuhrError.single(
            str(log), "--accept-existing", "verifies intact; a new chain would erase its history", "keep the log"
        )
    for folder in published_deliveries(deliveries_root):
        problems = verify_delivery(folder, signer)
        manifest = {} if problems else json.loads((folder / MANIFEST).read_bytes())
        names = (manifest.get("application_id"), manifest.get("delivery_id"), manifest.get("synthetic"))
        if problems or names != (folder.parent.name, folder.name, False):
            raise KuhrError.single(
                str(folder),
                "(folder)",
                "is not a whole delivery of this application signed by this deployment (a copy, a dummy or damaged)",
                "move it out of the deliveries folder, then start the new chain",
            )


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
    accepted = [[f.parent.name, f.name] for f in published_deliveries(deliveries_root)]  # pending ones: none
    append_audit(
        path, {"event": CHAIN_BREAK, "reason": reason, "previous_log_sha256": old_sha, "accepted": accepted}, key
    )
    return kept
