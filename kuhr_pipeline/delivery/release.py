"""Four eyes: a prepared package reaches its recipients only when registered reviewers, none of
them its preparer, release it; a reviewer may reject it instead.

Every check is made before anything is written; a refusal (ReleaseRefused, exit 2) moves
nothing. The commit point is the signed audit line (`released` / `rejected`): the package's
`releases.json` and its move into place follow it, and `make_ready` completes them when a
process dies between the two.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kuhr_pipeline import clock
from kuhr_pipeline.application.find import find_spec, require_application_id
from kuhr_pipeline.application.load import load_spec
from kuhr_pipeline.delivery.audit import (
    AUDIT_LOG,
    PREPARED,
    REJECTED,
    RELEASED,
    AuditLogError,
    Ledger,
    Link,
    append_audit,
    ledgers,
    read_audit,
)
from kuhr_pipeline.delivery.durable import fsync_path
from kuhr_pipeline.delivery.folders import PENDING, pending_folder, released_folder
from kuhr_pipeline.delivery.manifest import MANIFEST
from kuhr_pipeline.delivery.reviewers import (
    ReleaseRefused,
    Reviewer,
    registered_reviewers,
    reviewer_key,
    sign_release,
    write_releases,
)
from kuhr_pipeline.delivery.verify import verify_delivery
from kuhr_pipeline.errors import SpecRefused

PROVENANCE = ("run_id", "trigger", "ran_by", "spec_sha256", "recipients", "decision_id", "approved_by")


@dataclass(frozen=True)
class Decision:
    """What a release or rejection did: the package's folder now, and its state."""

    application_id: str
    delivery_id: str
    path: Path | None
    state: str  # released, partly released (waiting for more reviews), rejected
    reviews: int
    required: int


def _now() -> str:
    return clock.now().isoformat(timespec="seconds").replace("+00:00", "Z")


def pending_target(target: str, root: Path) -> tuple[str, str]:
    """(application_id, delivery_id) of a pending folder under `root`, or of a bare delivery id."""
    path = Path(target)
    delivery_id = path.name
    if not delivery_id[:1].isdigit():
        raise ReleaseRefused.single(
            target, "DELIVERY", f"{delivery_id!r} is not a delivery id", "give a pending folder"
        )
    if path.parent.name == PENDING:
        if path.resolve().parents[2] != root.resolve():
            raise ReleaseRefused.single(target, "DELIVERY", f"is not under the deliveries folder {root}")
        application_id = path.parent.parent.name
    else:
        found = sorted(root.glob(f"*/{PENDING}/{delivery_id}"))
        if len(found) != 1:
            raise ReleaseRefused.single(
                target,
                "DELIVERY",
                f"is not pending: no package {delivery_id} waits in {root}",
                "see `history --state prepared`",
            )
        application_id = found[0].parent.parent.name
    return require_application_id(application_id, target), delivery_id


def _ledger(
    root: Path, signer: Ed25519PrivateKey, application_id: str, delivery_id: str, where: str
) -> tuple[Ledger, Link]:
    """The package's ledger, and a check for the line that decides it: made under the log's lock,
    it refuses when any line was added since the ledger was read (two reviewers at once), so that
    every check above holds for the log the line joins."""
    log = root / AUDIT_LOG
    lines, problems = read_audit(log, signer.public_key())
    if problems:
        raise AuditLogError([*problems[:3]])
    ledger = ledgers(lines)[0].get((application_id, delivery_id))
    if ledger is None or ledger.prepared is None:
        raise ReleaseRefused.single(
            where, "DELIVERY", f"has no prepared line in {log}", "release packages the pipeline prepared"
        )
    if ledger.state != PREPARED:
        raise ReleaseRefused.single(where, "DELIVERY", f"is not pending: it was {ledger.state}")

    def unchanged_since(sequence: int, _previous: str) -> dict[str, Any]:
        if sequence != len(lines) + 1:
            raise ReleaseRefused.single(
                where, "DELIVERY", "the audit log changed while this was checked", "run the command again"
            )
        return {}

    return ledger, unchanged_since


def _require_unchanged(folder: Path, ledger: Ledger, signer: Ed25519PrivateKey) -> None:
    """The package is the one prepared: every file as its manifest says, the manifest as its line says."""
    problems = verify_delivery(folder, signer.public_key()) if (folder / MANIFEST).is_file() else ["missing"]
    manifest = folder / MANIFEST
    if problems or hashlib.sha256(manifest.read_bytes()).hexdigest() != ledger.manifest_sha256:
        raise ReleaseRefused.single(
            str(folder),
            "(package)",
            "differs from what was prepared (a file or the manifest changed, or is missing)",
            "reject it and prepare the delivery again",
        )


def _require_spec_still_approved(applications: Path, ledger: Ledger, today: date) -> None:
    """The spec in KUHR_APPLICATIONS is still the prepared one, and its approval holds today."""
    record = ledger.prepared.record if ledger.prepared else {}
    application_id = str(record.get("application_id"))
    try:
        loaded = load_spec(find_spec(applications, application_id), today=today)
    except SpecRefused as refused:
        raise ReleaseRefused.single(
            str(applications),
            "spec",
            f"the spec of {application_id} may not be delivered today: {refused.problems[0]}",
            "release only what an approval valid today covers",
        ) from None
    if loaded.sha256 != record.get("spec_sha256"):
        raise ReleaseRefused.single(
            str(loaded.path),
            "(spec)",
            f"changed since the package was prepared (sha256 {loaded.sha256[:16]}, prepared from "
            f"{str(record.get('spec_sha256'))[:16]})",
            "reject this package and prepare the changed spec",
        )


def release(
    target: str,
    key_file: Path,
    note: str,
    root: Path,
    applications: Path,
    signer: Ed25519PrivateKey,
    reviewers: Path | None,
    required: int,
) -> Decision:
    """Release a pending package with one reviewer's key (see the module's docstring)."""
    registered = registered_reviewers(reviewers)
    application_id, delivery_id = pending_target(target, root)
    reviewer, key = reviewer_key(key_file, registered)
    ledger, unchanged_since = _ledger(root, signer, application_id, delivery_id, target)
    folder = pending_folder(root, application_id, delivery_id)
    _require_other_person(reviewer, ledger, target)
    _require_unchanged(folder, ledger, signer)
    _require_spec_still_approved(applications, ledger, clock.today())
    review: dict[str, Any] = {
        "application_id": application_id,
        "delivery_id": delivery_id,
        "manifest_sha256": ledger.manifest_sha256,
        "reviewer": reviewer.name,
        "key_fingerprint": reviewer.key_fingerprint,
        "time": _now(),
        "note": note,
    }
    review["signature"] = sign_release(key, review)
    reviews = [*ledger.reviews, review]
    prepared = ledger.prepared.record if ledger.prepared else {}
    required = max(required, int(prepared.get("required_reviews") or 1))  # never fewer than when prepared
    published = len(reviews) >= required
    append_audit(
        root / AUDIT_LOG,
        {
            "event": RELEASED,
            "application_id": application_id,
            "delivery_id": delivery_id,
            "time": review["time"],
            "manifest_sha256": ledger.manifest_sha256,
            "review": review,
            "reviewers": [{"name": r["reviewer"], "key_fingerprint": r["key_fingerprint"]} for r in reviews],
            "reviews": len(reviews),
            "required": required,
            "published": published,
            **{name: prepared.get(name) for name in PROVENANCE},
        },
        signer,
        unchanged_since,
    )
    path = finish_release(root, application_id, delivery_id, reviews, published)
    state = RELEASED if published else "partly released"
    return Decision(application_id, delivery_id, path, state, len(reviews), required)


def _require_other_person(reviewer: Reviewer, ledger: Ledger, where: str) -> None:
    preparer = str((ledger.prepared.record if ledger.prepared else {}).get("ran_by", ""))
    if reviewer.name.casefold() == preparer.casefold():
        raise ReleaseRefused.single(
            where, "--key", f"{reviewer.name} prepared this package and may not release it", "ask a second reviewer"
        )
    for earlier in ledger.reviews:
        if reviewer.name == earlier["reviewer"] or reviewer.key_fingerprint == earlier["key_fingerprint"]:
            raise ReleaseRefused.single(
                where,
                "--key",
                f"{reviewer.name} has already released this package; releases must come from distinct reviewers",
                "ask another registered reviewer",
            )


def finish_release(
    root: Path, application_id: str, delivery_id: str, reviews: list[dict[str, Any]], published: bool
) -> Path:
    """After the line: the reviewers' signatures into the package, and with the last review the
    package into place for its recipients. Idempotent, so `make_ready` completes it after a kill."""
    pending = pending_folder(root, application_id, delivery_id)
    write_releases(pending, reviews)
    if not published:
        return pending
    target = released_folder(root, application_id, delivery_id)
    for path in pending.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)  # readable for the transfer to recipients
    pending.chmod(0o755)
    pending.rename(target)
    fsync_path(target.parent)
    return target


def reject(
    target: str,
    key_file: Path,
    reason: str,
    root: Path,
    signer: Ed25519PrivateKey,
    reviewers: Path | None,
) -> Decision:
    """A signed `rejected` line with the reviewer and the reason, then the package removed."""
    if not reason.strip():
        raise ReleaseRefused.single(target, "--reason", "is empty", "say why the package is rejected")
    registered = registered_reviewers(reviewers)
    application_id, delivery_id = pending_target(target, root)
    reviewer, _ = reviewer_key(key_file, registered)
    ledger, unchanged_since = _ledger(root, signer, application_id, delivery_id, target)
    prepared = ledger.prepared.record if ledger.prepared else {}
    append_audit(
        root / AUDIT_LOG,
        {
            "event": REJECTED,
            "application_id": application_id,
            "delivery_id": delivery_id,
            "time": _now(),
            "manifest_sha256": ledger.manifest_sha256,
            "reviewers": [reviewer.as_json()],
            "reason": reason.strip(),
            **{name: prepared.get(name) for name in PROVENANCE},
        },
        signer,
        unchanged_since,
    )
    shutil.rmtree(pending_folder(root, application_id, delivery_id), ignore_errors=True)
    return Decision(application_id, delivery_id, None, REJECTED, 0, 0)
