"""The audit log's rules on hand-made logs and folders, fast: each package's state from its lines,
where its folder must be, the manifest's link to its line, the head kept apart, who ran it."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kuhr_pipeline.delivery import audit
from kuhr_pipeline.delivery.audit import (
    GENESIS,
    AuditLine,
    append_audit,
    head_file,
    ledgers,
    ran_by,
    read_audit,
    record_estimate,
    verify_audit,
)
from kuhr_pipeline.errors import KuhrError

APP, ID = "LEDGER-1", "20261208T000000000Z-aaaaaa"


@pytest.fixture
def key(keys_env) -> Ed25519PrivateKey:  # keys_env: DAGSTER_HOME in tmp (the head is kept there)
    return Ed25519PrivateKey.generate()


def _line(number: int, **record: object) -> AuditLine:
    return AuditLine(number, {"application_id": APP, "delivery_id": ID, **record})


def test_a_packages_state_comes_from_its_lines() -> None:
    prepared = _line(1, event="prepared", manifest_sha256="m")
    partly = _line(2, event="released", published=False)
    last = _line(3, event="released", published=True)
    rejected = _line(2, event="rejected")
    assert ledgers([prepared])[0][(APP, ID)].state == "prepared"
    assert ledgers([prepared, partly])[0][(APP, ID)].state == "prepared"
    found = ledgers([prepared, partly, last])[0][(APP, ID)]
    assert found.state == "released" and found.last is last and found.manifest_sha256 == "m"
    assert ledgers([prepared, rejected])[0][(APP, ID)].state == "rejected"
    legacy = ledgers([_line(1, event="delivery", manifest_sha256="old")])[0][(APP, ID)]
    assert legacy.state == "released" and legacy.manifest_sha256 == "old"
    estimate = AuditLine(1, {"event": "estimate", "application_id": APP})
    broken = AuditLine(2, {"event": "chain_break", "accepted": [[APP, ID]]})
    found_none, accepted = ledgers([estimate, broken])
    assert found_none == {} and accepted == {(APP, ID)}


def test_each_line_is_numbered_chained_and_signed(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    log = tmp_path / "audit.jsonl"
    append_audit(log, {"event": "estimate"}, key)
    append_audit(log, {"event": "estimate"}, key, lambda sequence, previous: {"seen": [sequence, previous]})
    raw = log.read_bytes().splitlines()
    first, second = (json.loads(line) for line in raw)
    assert (first["sequence"], first["prev_sha256"]) == (1, GENESIS)
    assert second["sequence"] == 2 and second["prev_sha256"] == hashlib.sha256(raw[0]).hexdigest()
    assert second["seen"] == [2, second["prev_sha256"]]
    assert read_audit(log, key.public_key())[1] == []
    (problem,) = read_audit(log, Ed25519PrivateKey.generate().public_key())[1][:1]
    assert "signature does not match" in problem.problem or "another key" in problem.problem
    log.write_bytes(raw[0] + b"\nnot json\n" + raw[1] + b"\n")
    texts = [p.problem for p in read_audit(log, key.public_key())[1]]
    assert "is not a JSON object (edited)" in texts and any("does not chain" in t for t in texts)


def test_the_head_kept_apart_catches_a_shortened_or_rewritten_log(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    log = tmp_path / "audit.jsonl"
    for _ in range(3):
        append_audit(log, {"event": "estimate"}, key)
    head = json.loads(head_file(log).read_text())
    lines = log.read_bytes().splitlines()
    assert head["sequence"] == 3 and head["line_sha256"] == hashlib.sha256(lines[2]).hexdigest()
    assert oct(head_file(log).parent.stat().st_mode & 0o777) == "0o700"
    assert audit.head_problems(log, lines, key.public_key(), None) == []
    (short,) = audit.head_problems(log, lines[:2], key.public_key(), None)
    assert short.field == "line 3" and "the log ends at line 2" in short.problem
    (rewritten,) = audit.head_problems(log, [*lines[:2], b"{}"], key.public_key(), None)
    assert "is not the line the head kept in" in rewritten.problem
    (expected,) = audit.head_problems(log, lines, key.public_key(), (2, "0" * 64))
    assert expected.field == "line 2" and "the expected head" in expected.problem
    assert audit.head_problems(log, lines, key.public_key(), (2, hashlib.sha256(lines[1]).hexdigest())) == []
    head_file(log).write_text(json.dumps({**head, "sequence": 2}))
    (forged,) = audit.head_problems(log, lines, key.public_key(), None)
    assert forged.field == "(head)" and "not a head signed by this signer" in forged.problem


def _package(folder: Path, sequence: int, previous: str) -> str:
    folder.mkdir(parents=True)
    data = json.dumps({"audit": {"sequence": sequence, "previous_sha256": previous}}).encode()
    (folder / "manifest.json").write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def test_a_package_is_where_its_state_says_and_names_its_line(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    root = tmp_path / "deliveries"
    log = root / "audit.jsonl"
    sha = _package(root / APP / ".pending" / ID, 1, GENESIS)
    append_audit(log, {"event": "prepared", "application_id": APP, "delivery_id": ID, "manifest_sha256": sha}, key)
    assert verify_audit(log, root, key.public_key()) == []
    (root / APP / ".pending" / ID).rename(root / APP / ID)  # moved without a release
    texts = [p.problem for p in verify_audit(log, root, key.public_key())]
    assert any("its delivery folder" in t and "is missing" in t for t in texts)
    assert any("delivery has no release line" in t for t in texts)
    record = {"event": "released", "application_id": APP, "delivery_id": ID, "published": True}
    append_audit(log, record, key)
    assert verify_audit(log, root, key.public_key()) == []
    manifest = root / APP / ID / "manifest.json"
    manifest.write_text(json.dumps({"audit": {"sequence": 9, "previous_sha256": GENESIS}}))
    assert any("manifest_sha256 does not match" in p.problem for p in verify_audit(log, root, key.public_key()))


def test_a_manifest_must_name_its_prepared_line(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    prepared = AuditLine(4, {"sequence": 4, "prev_sha256": "p"})
    manifest.write_text(json.dumps({"audit": {"sequence": 4, "previous_sha256": "p"}}))
    assert audit._linked(manifest, prepared)
    manifest.write_text(json.dumps({"audit": {"sequence": 3, "previous_sha256": "p"}}))
    assert not audit._linked(manifest, prepared)
    manifest.write_text(json.dumps({"audit": {"sequence": 4, "previous_sha256": "q"}}))
    assert not audit._linked(manifest, prepared)
    manifest.write_text(json.dumps({}))  # made before the link: only with a line made before it too
    assert not audit._linked(manifest, prepared) and audit._linked(manifest, AuditLine(4, {}))


def test_who_ran_it_is_a_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUHR_RAN_BY", "Dana D. Datamanager-2@hds")
    assert ran_by() == "Dana D. Datamanager-2@hds"
    for bad in ("", "x" * 65, "a\nb", "a\tb", "a;b", "a\u200bb", "<script>"):
        monkeypatch.setenv("KUHR_RAN_BY", bad)
        with pytest.raises(KuhrError, match="KUHR_RAN_BY: is not a name"):
            ran_by()
    for good in ("x" * 64, "Bjørn Ærlig", "kari_n"):
        monkeypatch.setenv("KUHR_RAN_BY", good)
        assert ran_by() == good


def test_an_estimate_line_says_who_which_spec_and_when(tmp_path: Path, key, monkeypatch) -> None:
    monkeypatch.setenv("KUHR_RAN_BY", "kari")
    record_estimate(tmp_path, key, APP, "s" * 64, "2026-12-08T00:00:00Z")
    (line,) = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert {k: line[k] for k in ("event", "application_id", "spec_sha256", "time", "ran_by")} == {
        "event": "estimate",
        "application_id": APP,
        "spec_sha256": "s" * 64,
        "time": "2026-12-08T00:00:00Z",
        "ran_by": "kari",
    }


def _signed_package(folder: Path, key: Ed25519PrivateKey, application_id: str, delivery_id: str, **extra) -> None:
    from kuhr_pipeline.delivery.manifest import manifest_bytes, public_fingerprint, sign

    folder.mkdir(parents=True)
    (folder / "README.md").write_text("x")
    entry = {"path": "README.md", "bytes": 1, "sha256": hashlib.sha256(b"x").hexdigest(), "rows": None}
    manifest = {
        "application_id": application_id,
        "delivery_id": delivery_id,
        "synthetic": False,
        "signer_key_fingerprint": public_fingerprint(key.public_key()),
        "files": [entry],
        **extra,
    }
    data = manifest_bytes(manifest)
    (folder / "manifest.json").write_bytes(data)
    (folder / "manifest.json.sig").write_bytes(sign(data, key))


def test_a_new_chain_only_for_a_broken_log_and_whole_deliveries(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    root = tmp_path / "deliveries"
    log = root / "audit.jsonl"
    _signed_package(root / APP / ID, key, APP, ID)
    audit.require_broken_log(root, key.public_key())  # no log beside a whole delivery: a new chain may start
    kept = audit.break_chain(log, root, key, "lost")
    assert kept is None
    (first,) = [json.loads(x) for x in log.read_text().splitlines()]
    assert (first["event"], first["reason"], first["accepted"], first["previous_log_sha256"]) == (
        "chain_break",
        "lost",
        [[APP, ID]],
        None,
    )
    with pytest.raises(KuhrError, match="verifies intact; a new chain would erase its history"):
        audit.require_broken_log(root, key.public_key())
    old = log.read_bytes()
    log.write_bytes(old.replace(b"lost", b"LOST"))  # damaged
    audit.require_broken_log(root, key.public_key())
    damaged = log.read_bytes()
    kept = audit.break_chain(log, root, key, "damaged")
    assert kept == log.with_name(f"audit.jsonl.broken-{hashlib.sha256(damaged).hexdigest()[:16]}")
    assert kept.read_bytes() == damaged
    assert json.loads(log.read_text().splitlines()[0])["previous_log_sha256"] == hashlib.sha256(damaged).hexdigest()
    builds = [  # a copy of another application's delivery, of another delivery id's, a dummy, another signer's
        lambda f: _signed_package(f, key, "OTHER-1", f.name),
        lambda f: _signed_package(f, key, APP, ID),
        lambda f: _signed_package(f, key, APP, f.name, synthetic=True),
        lambda f: _signed_package(f, Ed25519PrivateKey.generate(), APP, f.name),
    ]
    for build in builds:
        folder = root / APP / "20261208T000000000Z-bbbbbb"
        build(folder)
        log.write_bytes(b"")  # a log that does not verify beside the folder
        with pytest.raises(KuhrError, match="is not a whole delivery of this application"):
            audit.require_broken_log(root, key.public_key())
        shutil.rmtree(folder)
