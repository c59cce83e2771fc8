"""The audit line commits a delivery: what a publish in progress holds, and what the next run does
with what a killed one left.

A publish writes its package into a hidden staging folder beside the target (`.staging-<id>`,
locked by its writer for as long as the writer lives), appends the signed audit line, and only
then renames the folder into place. So a published folder always has its line. A kill between
the line and the rename leaves a line and a whole staging folder: `make_ready` (run before every
publish, and by `deliver` before it starts) renames it into place once the package verifies;
staging folders without a line are removed. A published folder without a line (a folder copied
in, or left by an older version) is given its line when it verifies, and removed when not.

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
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kuhr_pipeline.delivery.audit import (
    AUDIT_LOG,
    accounted_for,
    append_audit,
    read_audit,
    verify_audit,
)
from kuhr_pipeline.delivery.folders import published_deliveries
from kuhr_pipeline.delivery.manifest import MANIFEST
from kuhr_pipeline.delivery.verify import verify_delivery
from kuhr_pipeline.errors import KuhrError

STAGING_PREFIX = ".staging-"
LOCK_SUFFIX = ".lock"
FIX = "restore audit.jsonl from backup, or start a new chain with `kuhr-pipeline audit init --accept-existing`"


class AuditLogError(KuhrError):
    """The audit log is missing or damaged beside existing deliveries: nothing is delivered (exit 3)."""

    exit_code = 3


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


def make_ready(root: Path, key: Ed25519PrivateKey) -> list[str]:
    """Reconcile the deliveries root with its audit log before publishing; returns what was done.
    Raises AuditLogError when the log cannot be trusted or lines and folders disagree."""
    log, signer = root / AUDIT_LOG, key.public_key()
    folders = published_deliveries(root)
    if not log.exists() and folders:
        raise AuditLogError.single(str(log), "(file)", f"is missing while {len(folders)} delivery folders exist", FIX)
    lines, problems = read_audit(log, signer)
    if problems:
        raise AuditLogError(problems)
    delivered, accepted = accounted_for(lines)
    lined = {key: line.record for key, line in delivered.items()}
    done = [_complete(stage, lined, signer) for app in _applications(root) for stage in _stages(app)]
    for app in _applications(root):
        remove_stale_staging(app)
    known = set(delivered) | accepted
    for folder in published_deliveries(root):
        if (folder.parent.name, folder.name) not in known:
            done.append(_adopt_or_remove(folder, log, key))
    remaining = verify_audit(log, root, signer)
    if remaining:
        raise AuditLogError(remaining)
    return [d for d in done if d]


def _applications(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.exists() else []


def _complete(stage: Path, lined: dict[tuple[str, str], dict[str, Any]], signer: Ed25519PublicKey) -> str:
    """A staging folder whose line was written before a kill: renamed into place if it is whole."""
    if _writer_alive(stage):
        return ""
    target = stage.with_name(stage.name.removeprefix(STAGING_PREFIX))
    record = lined.get((stage.parent.name, target.name))
    manifest = stage / MANIFEST
    if record is None or target.exists() or not manifest.is_file():
        return ""
    if hashlib.sha256(manifest.read_bytes()).hexdigest() != record.get("manifest_sha256"):
        return ""
    if verify_delivery(stage, signer):
        return ""
    stage.rename(target)
    return f"completed {target}: its audit line was written before the run stopped"


def _adopt_or_remove(folder: Path, log: Path, key: Ed25519PrivateKey) -> str:
    """A published folder without a line: given its line when whole and signed by us, else removed."""
    if verify_delivery(folder, key.public_key()):
        shutil.rmtree(folder)
        return f"removed {folder}: no audit line and not a whole, signed delivery"
    manifest = (folder / MANIFEST).read_bytes()
    append_audit(
        log,
        {
            "event": "delivery",
            "application_id": folder.parent.name,
            "delivery_id": folder.name,
            "manifest_sha256": hashlib.sha256(manifest).hexdigest(),
            "reconciled": True,
        },
        key,
    )
    return f"recorded {folder}: a whole delivery without its audit line, line added"
