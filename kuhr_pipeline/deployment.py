"""Which deployment a run belongs to: its folders and keys, as one fingerprint.

A run is tagged with the fingerprint of the deployment that launched it, and every step checks
it against its own before it reads anything. So a run whose launch-time config points elsewhere,
or a Celery worker of another deployment on the same broker (other folders, another master or
signing key), refuses the step instead of running it. The fingerprint holds no key material:
a one-way hash over the folders and the keys' own hashes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

DEPLOYMENT_TAG = "kuhr/deployment"
SIGNER_TAG = "kuhr/signer"


def deployment_fingerprint(source: Path, deliveries: Path, applications: Path, master_key: bytes) -> str:
    body = {
        "source": str(source.resolve()),
        "deliveries": str(deliveries.resolve()),
        "applications": str(applications.resolve()),
        "master_key": hashlib.sha256(b"kuhr-pipeline/deployment/v1\0" + master_key).hexdigest(),
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()[:32]
