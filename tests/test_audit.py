"""The signed, hash-chained audit log: every forgery a writer of the file can try is caught, and
the log and the delivery folders are held to each other."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kuhr_pipeline.delivery.audit import append_audit, verify_audit
from kuhr_pipeline.identity.new_keys import init_keys
from tests.helpers import run_cli


@pytest.fixture
def signer(tmp_path: Path) -> dict[str, Path]:
    keys = tmp_path / "keys"
    init_keys(keys / "pseudonym.key", keys / "signing.pem", None, keys)
    return {"pem": keys / "signing.pem", "pub": keys / "signing.pub"}


def _key(pem: Path) -> Ed25519PrivateKey:
    from kuhr_pipeline.identity.keys import read_signing_key

    return read_signing_key(str(pem))


def _folder(root: Path, delivery_id: str) -> str:
    """A delivery folder with a manifest; returns the manifest's SHA-256."""
    folder = root / "A-1" / delivery_id
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"delivery_id": delivery_id}))
    return hashlib.sha256((folder / "manifest.json").read_bytes()).hexdigest()


@pytest.fixture
def log(tmp_path: Path, signer: dict[str, Path]) -> Path:
    root = tmp_path / "deliveries"
    path = root / "audit.jsonl"
    for n in range(4):
        sha = _folder(root, f"d{n}")
        record = {"application_id": "A-1", "delivery_id": f"d{n}", "manifest_sha256": sha, "ran_by": "dm"}
        append_audit(path, record, _key(signer["pem"]))
    return path


def verify(log: Path, signer: dict[str, Path], capsys) -> tuple[int, str]:
    code, out, err = run_cli(["audit", "verify", "--log", log, "--signer-pub", signer["pub"]], capsys)
    assert "Traceback" not in err
    return code, out + err


def _lines(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def _write(log: Path, records: list[dict]) -> None:
    log.write_text("".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in records))


def _chain(records: list[dict]) -> list[dict]:
    """Recompute prev_sha256 from the first record on, as a forger without the key would."""
    prev = "0" * 64
    for record in records:
        record["prev_sha256"] = prev
        prev = hashlib.sha256(json.dumps(record, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    return records


def test_intact_log(log: Path, signer, capsys) -> None:
    code, text = verify(log, signer, capsys)
    assert code == 0 and "intact" in text


def test_last_line_edited(log: Path, signer, capsys) -> None:
    records = _lines(log)
    records[-1]["ran_by"] = "someone else"
    _write(log, records)
    code, text = verify(log, signer, capsys)
    assert code == 1 and "line 4: its signature does not match its content" in text


def test_last_manifest_hash_set_to_another(log: Path, signer, capsys) -> None:
    records = _lines(log)
    records[-1]["manifest_sha256"] = "f" * 64
    _write(log, records)
    code, text = verify(log, signer, capsys)
    assert code == 1 and "line 4: its signature does not match" in text
    assert "line 4: manifest_sha256 does not match" in text


def test_forged_line_chained_to_the_last(log: Path, signer, capsys) -> None:
    """A line for a delivery that does not exist, chained correctly, with a made-up signature."""
    records = _lines(log)
    forged = {**records[-1], "delivery_id": "d9", "signature": base64.b64encode(b"x" * 64).decode()}
    records.append(forged)
    _write(log, _chain(records))
    code, text = verify(log, signer, capsys)
    assert code == 1 and "line 5: its signature does not match" in text
    assert "line 5: its delivery folder" in text and "is missing" in text


def test_middle_line_edited_and_chain_recomputed(log: Path, signer, capsys) -> None:
    records = _lines(log)
    records[1]["ran_by"] = "someone else"
    _write(log, _chain(records))
    code, text = verify(log, signer, capsys)
    assert code == 1 and "line 2: its signature does not match" in text
    assert "does not chain" not in text  # the chain itself was made whole: the signature is what catches it


def test_line_signed_by_another_key(log: Path, signer, capsys, tmp_path: Path) -> None:
    other = Ed25519PrivateKey.generate()
    sha = _folder(log.parent, "d4")
    append_audit(log, {"application_id": "A-1", "delivery_id": "d4", "manifest_sha256": sha}, other)
    code, text = verify(log, signer, capsys)
    assert code == 1 and "line 5: is signed by another key" in text


def test_manifest_that_does_not_match_its_line(log: Path, signer, capsys) -> None:
    (log.parent / "A-1" / "d2" / "manifest.json").write_text('{"delivery_id": "d2", "edited": true}')
    code, text = verify(log, signer, capsys)
    assert code == 1 and "line 3: manifest_sha256 does not match" in text


def test_removed_line(log: Path, signer, capsys) -> None:
    records = _lines(log)
    del records[1]
    _write(log, records)
    code, text = verify(log, signer, capsys)
    assert code == 1 and "line 2: does not chain" in text and "d1: (folder): delivery has no release line" in text


def test_reordered_lines(log: Path, signer, capsys) -> None:
    records = _lines(log)
    records[1], records[2] = records[2], records[1]
    _write(log, records)
    code, text = verify(log, signer, capsys)
    assert code == 1 and "does not chain" in text


def test_delivery_without_its_line(log: Path, signer, capsys) -> None:
    _folder(log.parent, "d9")
    code, text = verify(log, signer, capsys)
    assert code == 1 and "d9: (folder): delivery has no release line" in text


def test_missing_log_beside_deliveries(log: Path, signer, capsys) -> None:
    log.unlink()
    code, text = verify(log, signer, capsys)
    assert code == 1 and "is missing while 4 delivery folders exist" in text


def test_verify_audit_returns_problems_naming_the_line(log: Path, signer) -> None:
    records = _lines(log)
    records[0]["ran_by"] = "x"
    _write(log, records)
    from kuhr_pipeline.identity.keys import read_signing_key

    problems = verify_audit(log, log.parent, read_signing_key(str(signer["pem"])).public_key())
    assert [(p.field, p.problem.split(" (")[0]) for p in problems][:1] == [
        ("line 1", "its signature does not match its content for the signer " + records[0]["signer_key_fingerprint"])
    ]
