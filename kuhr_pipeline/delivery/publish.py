"""Preparing a delivery: encrypt, describe, sign, and move into `.pending` atomically.

Everything is written into a hidden staging folder beside the target (`.staging-<id>`), fsynced,
then, after its signed `prepared` audit line, renamed to `.pending/<delivery_id>` (owner-only):
a failure or a kill at any point leaves no folder that looks like a package. Recipients see it
only when reviewers release it (delivery/release.py). Tables are read from sealed staging; CSV
conversions are sealed too, so no plaintext row is ever written to disk.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kuhr_pipeline import __version__, clock
from kuhr_pipeline.application.model import ApplicationSpec
from kuhr_pipeline.delivery.audit import AUDIT_LOG, DELIVERY, PREPARED, Link, append_audit, ran_by
from kuhr_pipeline.delivery.commit import STAGING_PREFIX, hold_lock, make_ready, release_lock
from kuhr_pipeline.delivery.crypt import encrypt_file, ephemeral_writer_key
from kuhr_pipeline.delivery.documents import approval_of, codebook, readme
from kuhr_pipeline.delivery.durable import fsync_path
from kuhr_pipeline.delivery.folders import new_delivery_id, pending_folder, spec_archive
from kuhr_pipeline.delivery.hashing import fingerprint, sha256_file
from kuhr_pipeline.delivery.manifest import MANIFEST, SIGNATURE, manifest_bytes, public_fingerprint, sign
from kuhr_pipeline.delivery.reviewers import required_reviews
from kuhr_pipeline.errors import DeliveryError, Problem
from kuhr_pipeline.faults import fault_point
from kuhr_pipeline.sealed import SealedWriter
from kuhr_pipeline.staging import Staging, remove_staging
from kuhr_pipeline.stopping import COMMIT


@dataclass(frozen=True)
class DataTable:
    """A table to deliver, as a Parquet file in the pipeline's staging area."""

    name: str
    path: Path
    rows: int


@dataclass(frozen=True)
class DeliveryContents:
    spec: ApplicationSpec
    spec_sha256: str
    recipient_keys: dict[str, bytes]
    tables: list[DataTable]
    documents: dict[str, bytes] = field(default_factory=dict)  # name → plaintext, encrypted as data too
    codebook_columns: list[tuple[str, str]] = field(default_factory=list)
    codebook_schema: pa.Schema | None = None
    synthetic: bool = False  # dummy persons (kuhr_pipeline.dummy), no one of the register
    provenance: Provenance | None = None  # who and what made it (None: a dummy, outside the register's log)
    canonical_spec: bytes = b""  # archived beside the deliveries under specs/<spec_sha256>.yaml
    pseudonyms: dict[str, str] = field(default_factory=dict)  # form, domain, algorithm, key fingerprint


@dataclass(frozen=True)
class Provenance:
    """Who prepared a package and how the run was started."""

    run_id: str
    trigger: str  # cli, sensor, schedule, ui, backfill
    ran_by: str


@dataclass(frozen=True)
class PublishedDelivery:
    path: Path
    delivery_id: str
    manifest_sha256: str
    files: int


def _as_csv(staging: Staging, table_path: Path, out: Path) -> None:
    """Sealed Parquet → sealed CSV (UTF-8, header, list columns joined with ","), batch by batch."""
    sink = SealedWriter(out, staging.key)
    writer: pacsv.CSVWriter | None = None
    try:
        with staging.parquet_file(table_path) as parquet:
            for batch in parquet.iter_batches(batch_size=128 * 1024):
                columns = [pc.binary_join(col, ",") if pa.types.is_list(col.type) else col for col in batch.columns]
                flat = pa.RecordBatch.from_arrays(columns, names=batch.schema.names)
                if writer is None:
                    writer = pacsv.CSVWriter(sink, flat.schema)
                writer.write_batch(flat)
            if writer is None:
                fields = [
                    pa.field(f.name, pa.string() if pa.types.is_list(f.type) else f.type) for f in parquet.schema_arrow
                ]
                writer = pacsv.CSVWriter(sink, pa.schema(fields))
    finally:
        if writer is not None:
            writer.close()
        sink.close()


def publish_delivery(
    contents: DeliveryContents,
    deliveries_root: Path,
    staging: Staging,
    signing_key: Ed25519PrivateKey,
    on_step: Callable[[str], None] | None = None,
    still_wanted: Callable[[], bool] = lambda: True,
) -> PublishedDelivery:
    """Encrypt the sealed tables and the documents into a hidden folder, describe and sign it, then
    commit it (the `prepared` audit line, the rename into `.pending`). Plaintext exists only in
    memory, a chunk at a time.
    `still_wanted` is asked just before the commit: a run stopped from another process (its step
    on a worker) publishes nothing."""
    report = on_step or (lambda _: None)
    delivery_id = new_delivery_id()
    app_dir = deliveries_root / contents.spec.application_id
    for done in make_ready(deliveries_root, signing_key):
        report(done)
    stage, lock = _open_stage(app_dir, delivery_id)
    scratch = staging.sub(f"csv-{delivery_id}")
    try:
        files = _encrypt_data(contents, stage, staging, scratch, report)
        files += _describe(contents, stage, delivery_id, files)
        manifest = _manifest(contents, delivery_id, files, signing_key.public_key())
        for path in [*stage.rglob("*"), stage]:
            if not contents.synthetic:
                path.chmod(0o700 if path.is_dir() else 0o600)  # pending: for the service user only
            fsync_path(path)
    except BaseException as exc:
        shutil.rmtree(stage, ignore_errors=True)
        release_lock(stage, lock)
        if isinstance(exc, OSError):
            raise _write_failed(app_dir, exc) from None
        raise
    finally:
        remove_staging(scratch.folder)
    sealed: dict[str, str] = {}

    def seal(sequence: int, previous: str) -> dict[str, Any]:
        """Under the log's lock: the manifest names its line (sequence, the previous line's hash),
        is signed and written; the line gets the manifest's hash."""
        data = manifest_bytes({**manifest, "audit": {"sequence": sequence, "previous_sha256": previous}})
        try:
            for name, content in ((MANIFEST, data), (SIGNATURE, sign(data, signing_key))):
                (stage / name).write_bytes(content)
                if not contents.synthetic:
                    (stage / name).chmod(0o600)
                fsync_path(stage / name)
            fsync_path(stage)
        except OSError as exc:
            raise _write_failed(app_dir, exc) from None
        sealed["sha256"] = hashlib.sha256(data).hexdigest()
        return {"manifest_sha256": sealed["sha256"]}

    # A dummy (synthetic persons, its own folder and log) needs no review: it is made in place.
    target = app_dir / delivery_id if contents.synthetic else pending_folder(deliveries_root, app_dir.name, delivery_id)
    _commit(stage, target, lock, deliveries_root, signing_key, audit_record(contents, manifest), still_wanted, seal)
    _archive_spec(contents, deliveries_root)
    return PublishedDelivery(target, delivery_id, sealed["sha256"], len(files))


def _write_failed(app_dir: Path, exc: OSError) -> DeliveryError:
    return DeliveryError(
        Problem(
            str(app_dir),
            "KUHR_DELIVERIES",
            f"writing the delivery failed ({exc.strerror})",
            "free space or fix permissions, then run again; nothing was published",
        )
    )


def _archive_spec(contents: DeliveryContents, root: Path) -> None:
    """The canonical spec the package was prepared from, kept once per hash (no person data)."""
    if not contents.canonical_spec:
        return
    path = spec_archive(root, contents.spec.application_id, contents.spec_sha256)
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    aside = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    aside.write_bytes(contents.canonical_spec)
    aside.replace(path)


def _open_stage(app_dir: Path, delivery_id: str) -> tuple[Path, int]:
    """The hidden folder the delivery is written into, locked against `make_ready` of other runs."""
    stage = app_dir / f"{STAGING_PREFIX}{delivery_id}"
    lock = -1
    try:
        app_dir.mkdir(parents=True, exist_ok=True)
        lock = hold_lock(stage)
        (stage / "data").mkdir(parents=True)
    except OSError as exc:
        shutil.rmtree(stage, ignore_errors=True)
        if lock >= 0:
            release_lock(stage, lock)
        raise DeliveryError.single(
            str(app_dir),
            "KUHR_DELIVERIES",
            f"cannot be written ({exc.strerror})",
            "point KUHR_DELIVERIES at a writable folder with free space",
        ) from None
    return stage, lock


def _encrypt_data(
    contents: DeliveryContents, stage: Path, staging: Staging, scratch: Staging, report: Callable[[str], None]
) -> list[dict[str, Any]]:
    """Each table (as CSV when asked) and each document, encrypted to every recipient."""
    writer_key = ephemeral_writer_key()
    recipients = list(contents.recipient_keys.values())
    csv = contents.spec.delivery.format == "csv"
    files: list[dict[str, Any]] = []
    for table in contents.tables:
        plain = table.path
        if csv:
            plain = scratch.path(f"{table.name}.csv")
            _as_csv(staging, table.path, plain)
        rel = f"data/{table.name}.{'csv' if csv else 'parquet'}.c4gh"
        report(f"encrypting {rel}")  # no row count: the log is not the place for a small one
        with staging.open_plain(plain) as stream:
            plaintext_sha = encrypt_file(stream, stage / rel, recipients, writer_key)
        files.append({"path": rel, "rows": table.rows, "plaintext_sha256": plaintext_sha})
    for name, data in contents.documents.items():
        rel = f"data/{name}.c4gh"
        plaintext_sha = encrypt_file(io.BytesIO(data), stage / rel, recipients, writer_key)
        files.append({"path": rel, "rows": None, "plaintext_sha256": plaintext_sha})
    return files


def _describe(
    contents: DeliveryContents, stage: Path, delivery_id: str, files: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """README and codebook in the clear (no data in them); sizes and hashes of every file."""
    spec = contents.spec
    text = readme(spec, delivery_id, [f["path"] for f in files], contents.synthetic)
    (stage / "README.md").write_text(text, encoding="utf-8")
    (stage / "codebook.md").write_text(
        codebook(spec, contents.codebook_columns, contents.codebook_schema), encoding="utf-8"
    )
    documents = [
        {"path": doc, "rows": None, "plaintext_sha256": sha256_file(stage / doc)}
        for doc in ("README.md", "codebook.md")
    ]
    for entry in files + documents:
        path = stage / entry["path"]
        entry["bytes"] = path.stat().st_size
        entry["sha256"] = sha256_file(path)
    return documents


def _manifest(
    contents: DeliveryContents, delivery_id: str, files: list[dict[str, Any]], signer: Ed25519PublicKey
) -> dict[str, Any]:
    spec = contents.spec
    made = contents.provenance
    return {
        **({"run_id": made.run_id, "trigger": made.trigger, "ran_by": made.ran_by} if made else {}),
        "application_id": spec.application_id,
        "delivery_id": delivery_id,
        "created_at": clock.now().isoformat(timespec="seconds").replace("+00:00", "Z"),
        "spec_sha256": contents.spec_sha256,
        "pipeline_version": __version__,
        "synthetic": contents.synthetic,
        "data_level": spec.data_level,
        "format": spec.delivery.format,
        "period": {"from": spec.period.from_.isoformat(), "to": spec.period.to.isoformat()},
        "linkage_domain": spec.domain,
        **({"pseudonyms": contents.pseudonyms} if contents.pseudonyms else {}),
        "approval": approval_of(spec),
        "claims": spec.claims,
        "recipients": [
            {"name": name, "key_fingerprint": fingerprint(key)} for name, key in contents.recipient_keys.items()
        ],
        "signer_key_fingerprint": public_fingerprint(signer),
        "files": sorted(files, key=lambda f: f["path"]),
    }


def audit_record(contents: DeliveryContents, manifest: dict[str, Any]) -> dict[str, Any]:
    """The `prepared` line: the package and its provenance (who, how started, which approval);
    its manifest's hash is added under the log's lock (`seal`)."""
    made = contents.provenance
    approval = contents.spec.approval
    return {
        "event": DELIVERY if contents.synthetic else PREPARED,
        "application_id": contents.spec.application_id,
        "delivery_id": manifest["delivery_id"],
        "time": manifest["created_at"],
        "spec_sha256": contents.spec_sha256,
        "recipients": manifest["recipients"],
        "ran_by": made.ran_by if made else ran_by(),
        "run_id": made.run_id if made else None,
        "trigger": made.trigger if made else None,
        "decision_id": approval.decision_id,
        "approved_by": approval.approved_by,
        "required_reviews": required_reviews(),  # the deployment's, as it was when prepared
    }


def _commit(
    stage: Path,
    target: Path,
    lock: int,
    root: Path,
    signing_key: Ed25519PrivateKey,
    record: dict[str, Any],
    still_wanted: Callable[[], bool],
    seal: Link,
) -> None:
    """The signed `prepared` line, then the rename into `.pending`: the line is the commit point.
    A kill between the two leaves a line and a whole staging folder, which the next run renames
    into place."""
    with COMMIT:  # a stop (SIGTERM, Ctrl-C) waits for the commit, or comes before it
        try:
            if not still_wanted():
                raise DeliveryError.single(
                    str(target.parent),
                    "run",
                    "was stopped before its commit; nothing was published",
                    "deliver again when the delivery is wanted",
                )
            append_audit(root / AUDIT_LOG, record, signing_key, seal)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)  # no line: nothing was delivered
            release_lock(stage, lock)
            raise
        try:
            fault_point("after-audit-line")
            target.parent.mkdir(mode=0o700, exist_ok=True)
            stage.rename(target)
            fsync_path(target.parent)
        finally:
            release_lock(stage, lock)
