"""Resources: where data live, and the keys. Secrets arrive as `dg.EnvVar`, never as run config."""

from pathlib import Path

import dagster as dg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kuhr_pipeline import settings
from kuhr_pipeline.defs.io import RunScopedIOManager
from kuhr_pipeline.identity.keys import read_master_key, read_signing_key


class KuhrPaths(dg.ConfigurableResource):
    """Every folder a run reads or writes: source, deliveries, applications and each run's staging
    ("" means: the environment, then the default)."""

    source: str = ""
    deliveries: str = ""
    applications: str = ""

    def source_dir(self) -> Path:
        return settings.source_dir(self.source or None)

    def deliveries_dir(self) -> Path:
        return settings.deliveries_dir(self.deliveries or None)

    def applications_dir(self) -> Path:
        return settings.applications_dir(self.applications or None)

    def staging_dir(self, application_id: str, run_id: str | None = None) -> Path:
        """One run's staging (person-level rows, encrypted, inside DAGSTER_HOME); without
        `run_id`, the application's, which holds every run's."""
        return settings.staging_dir(application_id, run_id)

    def source_checks_dir(self) -> Path:
        return settings.source_checks_dir()


class PseudonymKey(dg.ConfigurableResource):
    """The pseudonym master key, read from the file named by KUHR_PSEUDONYM_KEY_FILE."""

    key_file: str

    def master_key(self) -> bytes:
        return read_master_key(self.key_file)


class SigningKey(dg.ConfigurableResource):
    """The Ed25519 key that signs manifests, read from the file named by KUHR_SIGNING_KEY_FILE."""

    key_file: str

    def private_key(self) -> Ed25519PrivateKey:
        return read_signing_key(self.key_file)


def default_resources() -> dict[str, object]:
    return {
        "io_manager": RunScopedIOManager(),
        "paths": KuhrPaths(),
        "pseudonym_key": PseudonymKey(key_file=dg.EnvVar(settings.PSEUDONYM_KEY_VARIABLE)),
        "signing_key": SigningKey(key_file=dg.EnvVar(settings.SIGNING_KEY_VARIABLE)),
    }
