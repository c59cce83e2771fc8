"""The audit line commits a delivery: what a publish in progress holds, and what the next run does
with what a killed one left.

A publish writes its package into a hidden staging folder beside the target (`.staging-<id>`,
locked by its writer for as long as the writer lives), appends the signed `prepared` line, and
only then renames the folder into `.pending/<id>`. So a pending folder always has its line. A
kill between the line and the rename leaves a line and a whole staging folder: `make_ready` (run
before every publish, and by `deliver` before it starts) renames it into place once the package
verifies; staging folders without a line are removed. A release or rejection killed after its
line is finished (signatures written, folder moved or removed). A folder without its lines (one
copied in) is never adopted: `make_ready` refuses until the operator removes it.

`make_ready` refuses (exit 3) while the log is missing beside delivery folders or fails its own
checks (chain, signatures), and when lines and folders still disagree after reconciling: the
operator restores the log or starts a new chain (`kuhr-pipeline audit init --accept-existing`).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kuhr_pipeline.delivery.audit import (
    AUDIT_LOG,
    FIX,
    PREPARED,
    REJECTED,
    AuditLogError,
    Ledger,
    audit_records,
    ledgers,
    read_audit,
    verify_audit,
)
from kuhr_pipeline.delivery.folders import pending_deliveries, pending_folder, published_deliveries
from kuhr_pipeline.delivery.manifest import MANIFEST
from kuhr_pipeline.delivery.release import finish_release
from kuhr_pipeline.delivery.verify import verify_delivery

STAGING_PREFIX = ".staging-"
LOCK_SUFFIX = ".lock"


def _lock_path(stage: Path) -> Path:
    return stage.with_name(stage.name + LOCK_SUFFIX)


def hold_lock(stage: Path) -> int:
    """Lock a staging folder (via a lock file beside it) for as long as this process lives;
    the kernel drops the lock on any exit, SIGKILL included."""
    fd = os.open(_lock_path(stage), os.O_CREAT | os.O_WRONLY, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def release_lock(stage: Path, fd: int) -> None:
    _lock_path(stage).unlink(missing_ok=True)
    os.close(fd)


def _writer_alive(stage: Path) -> bool:
    try:
        fd = os.open(_lock_path(stage), os.O_RDONLY)
    except FileNotFoundError:
        return False  # the lock is created before the folder and removed after it: no lock, no writer
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _stages(app_dir: Path) -> list[Path]:
    return [s for s in app_dir.glob(f"{STAGING_PREFIX}*") if not s.name.endswith(LOCK_SUFFIX)]


def remove_stale_staging(app_dir: Path) -> list[Path]:
    """Remove staging left by a writer that is gone (killed, machine restarted): its lock is free."""
    removed = []
    for stage in _stages(app_dir):
        if not _writer_alive(stage):
            shutil.rmtree(stage, ignore_errors=True)
            _lock_path(stage).unlink(missing_ok=True)
            removed.append(stage)
    for lock in app_dir.glob(f"{STAGING_PREFIX}*{LOCK_SUFFIX}"):
        if not lock.with_name(lock.name.removesuffix(LOCK_SUFFIX)).exists():
            lock.unlink(missing_ok=True)
    return removed


def clean_publishing(root: Path) -> list[str]:
    """`kuhr-pipeline clean`: a killed publish's `.staging-<id>` folder, when no writer holds it
    and no audit line names its delivery (one with a line is completed by the next run instead)."""
    named = {(str(r.get("application_id")), str(r.get("delivery_id"))) for r in audit_records(root / AUDIT_LOG)}
    lines = []
    for app in _applications(root):
        for stage in _stages(app):
            delivery_id = stage.name.removeprefix(STAGING_PREFIX)
            if _writer_alive(stage) or (app.name, delivery_id) in named:
                continue
            shutil.rmtree(stage, ignore_errors=True)
            _lock_path(stage).unlink(missing_ok=True)
            lines.append(f"{app.name}: removed {stage.name}, a publish that was killed before its audit line")
    return lines


def make_ready(root: Path, key: Ed25519PrivateKey) -> list[str]:
    """Reconcile the deliveries root with its audit log before a run; returns what was done.
    Raises AuditLogError when the log cannot be trusted or lines and folders disagree."""
    log, signer = root / AUDIT_LOG, key.public_key()
    folders = published_deliveries(root) + pending_deliveries(root)
    if not log.exists() and folders:
        raise AuditLogError.single(str(log), "(file)", f"is missing while {len(folders)} delivery folders exist", FIX)
    lines, problems = read_audit(log, signer)
    if problems:
        raise AuditLogError(problems)
    found, _ = ledgers(lines)
    done = [_complete(stage, found, signer) for app in _applications(root) for stage in _stages(app)]
    for app in _applications(root):
        remove_stale_staging(app)
    done += [_finish_decision(folder, found) for folder in pending_deliveries(root)]
    remaining = verify_audit(log, root, signer)
    if remaining:
        raise AuditLogError(remaining)
    return [d for d in done if d]


def _applications(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.exists() else []


def _complete(stage: Path, found: dict[tuple[str, str], Ledger], signer: Ed25519PublicKey) -> str:
    """A staging folder whose `prepared` line was written before a kill: moved into `.pending`
    when it is whole."""
    if _writer_alive(stage):
        return ""
    delivery_id = stage.name.removeprefix(STAGING_PREFIX)
    target = pending_folder(stage.parent.parent, stage.parent.name, delivery_id)
    ledger = found.get((stage.parent.name, delivery_id))
    manifest = stage / MANIFEST
    if ledger is None or ledger.state != PREPARED or target.exists() or not manifest.is_file():
        return ""
    if hashlib.sha256(manifest.read_bytes()).hexdigest() != ledger.manifest_sha256:
        return ""
    if verify_delivery(stage, signer):
        return ""
    target.parent.mkdir(mode=0o700, exist_ok=True)
    stage.rename(target)
    return f"completed {target}: its prepared line was written before the run stopped"


def _finish_decision(folder: Path, found: dict[tuple[str, str], Ledger]) -> str:
    """A pending package whose release or rejection was recorded before a kill: finished now."""
    application_id, delivery_id = folder.parent.parent.name, folder.name
    ledger = found.get((application_id, delivery_id))
    if ledger is None or ledger.state == PREPARED:
        if ledger is not None and ledger.released:  # a review recorded, its signature not yet written
            finish_release(folder.parent.parent.parent, application_id, delivery_id, ledger.reviews, False)
        return ""
    if ledger.state == REJECTED:
        shutil.rmtree(folder, ignore_errors=True)
        return f"removed {folder}: it was rejected"
    finish_release(folder.parent.parent.parent, application_id, delivery_id, ledger.reviews, True)
    return f"completed the release of {delivery_id}: its released line was written before the process stopped"
