"""A project's own population (utvalgsfil): the persons a delivery may hold, and their løpenumre.

The file is a CSV with the header `fnr` or `fnr,lopenr`, encrypted with Crypt4GH to the registry's
population key (KUHR_POPULATION_KEY_FILE; `keys init` or `keys population` makes the pair, and the
project encrypts to its public half). It is decrypted in memory only: the plaintext never touches
a disk, a log or Dagster's metadata. Each row is validated as the source's ids are
(`identity.fodselsnummer`); a row with an unusable id, a fødselsnummer listed twice, or a løpenummer
given twice is not used (every row of such a pair: which one was meant cannot be known) and counted.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from crypt4gh import lib as c4gh_lib
from crypt4gh.keys import c4gh, get_private_key, get_public_key
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from kuhr_pipeline import settings
from kuhr_pipeline.application.load import LoadedSpec
from kuhr_pipeline.errors import KeyFileError, KeysExist, SpecRefused
from kuhr_pipeline.identity.fodselsnummer import check_ids

LOPENR_PATTERN = re.compile(r"^[A-Za-z0-9]{1,32}$")
MAX_POPULATION_BYTES = 1 << 30  # 1 GiB encrypted: some 40 M rows, beyond any project


@dataclass(frozen=True)
class Population:
    """The usable rows: valid, distinct fødselsnummer as numbers (sorted) and, when the file gives
    them, each one's løpenummer. Never printed: `repr` shows counts only."""

    numbers: np.ndarray  # int64, sorted, unique
    lopenr: pa.Array | None  # aligned with `numbers`
    rows: int  # rows in the file
    not_used: int  # rows with an unusable id, or part of a duplicate fnr or løpenummer

    def __repr__(self) -> str:
        return f"Population(rows={self.rows}, used={len(self.numbers)}, not_used={self.not_used})"

    def listed(self, numbers: np.ndarray) -> np.ndarray:
        """Per id number: True when the person is in the population."""
        return self.places(numbers)[1]

    def places(self, numbers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per id number: its row in the population, and whether it is there at all (where it is
        not, the row is a valid index that means nothing)."""
        if not len(self.numbers):
            return np.zeros(len(numbers), dtype=np.int64), np.zeros(len(numbers), dtype=bool)
        at = np.minimum(np.searchsorted(self.numbers, numbers), len(self.numbers) - 1)
        return at, self.numbers[at] == numbers


class ListedPseudonyms:
    """The project's løpenummer of each listed person, as `pasient_pseudonym` (spec
    `identity.pseudonym: lopenr`): the same interface as the keyed `Pseudonymiser`."""

    __slots__ = ("_population",)

    def __init__(self, population: Population) -> None:
        if population.lopenr is None:
            raise ValueError("a population without løpenumre gives no løpenummer")
        self._population = population

    def __repr__(self) -> str:
        return "ListedPseudonyms(<løpenumre hidden>)"

    def fnr_numbers(self, numbers: np.ndarray) -> pa.Array:
        population = self._population
        assert population.lopenr is not None
        rows, listed = population.places(numbers)
        if not listed.all():
            raise ValueError("a person outside the population has no løpenummer")
        return population.lopenr.take(pa.array(rows))


def read_population(path: Path, secret_key_file: Path, where: str, *, with_lopenr: bool) -> Population:
    """The population in `path`, decrypted with the population key; SpecRefused naming
    `population.file` when it is missing, cannot be decrypted, or lacks a column the spec needs."""

    def refuse(problem: str, fix: str) -> NoReturn:
        raise SpecRefused.single(where, "population.file", problem, fix)

    if not path.is_file():
        refuse(f"{path} does not exist", "put the project's encrypted population file there")
    if path.stat().st_size > MAX_POPULATION_BYTES:
        refuse(f"{path} is larger than {MAX_POPULATION_BYTES >> 30} GiB", "split the population")
    plain = _decrypted(path, secret_key_file, refuse)
    try:
        table = pacsv.read_csv(
            io.BytesIO(plain),
            convert_options=pacsv.ConvertOptions(column_types={"fnr": pa.string(), "lopenr": pa.string()}),
        )
    except pa.ArrowInvalid:
        refuse(f"{path} is not a CSV with the header fnr or fnr,lopenr", "export the population as the contract says")
    finally:
        del plain
    if "fnr" not in table.column_names:
        refuse(f"{path} has no fnr column (its columns: {', '.join(table.column_names)[:200]})", "name the column fnr")
    if with_lopenr and "lopenr" not in table.column_names:
        refuse(
            f"{path} has no lopenr column, which identity.pseudonym: lopenr needs",
            "add the project's løpenumre as a column lopenr",
        )
    ids_as_lopenr = _fodselsnummer_among(table.column("lopenr")) if "lopenr" in table.column_names else 0
    if ids_as_lopenr:
        refuse(
            f"{path}: a lopenr is a fødselsnummer ({ids_as_lopenr:,} rows)",
            "give the project's own løpenumre, never a national id",
        )
    return _usable(table, with_lopenr)


def _usable(table: pa.Table, with_lopenr: bool) -> Population:
    ids = check_ids(table.column("fnr"))
    numbers = ids.number
    usable = ids.valid.copy()
    # a løpenummer column is checked whenever the file has one: the project links on it
    lopenr = table.column("lopenr").combine_chunks() if "lopenr" in table.column_names else None
    if lopenr is not None:
        well_formed = pc.match_substring_regex(lopenr, LOPENR_PATTERN.pattern)
        usable &= pc.fill_null(well_formed, False).to_numpy(zero_copy_only=False)
        usable &= ~_repeated(pc.fill_null(pc.dictionary_encode(lopenr).indices, -1).to_numpy(), usable)
    usable &= ~_repeated(numbers, usable)
    order = np.argsort(numbers[usable], kind="stable")
    rows = np.flatnonzero(usable)[order]
    return Population(
        numbers=numbers[rows],
        lopenr=lopenr.take(pa.array(rows)) if lopenr is not None and with_lopenr else None,
        rows=table.num_rows,
        not_used=int(table.num_rows - len(rows)),
    )


def _fodselsnummer_among(values: pa.ChunkedArray) -> int:
    """How many values are valid fødselsnummer (only 11-digit values are checked at all)."""
    digits = values.filter(pc.fill_null(pc.match_substring_regex(values, r"^[0-9]{11}$"), False))
    return int(check_ids(digits).valid.sum()) if len(digits) else 0


def _repeated(values: np.ndarray, among: np.ndarray) -> np.ndarray:
    """Per row: its value is given by another row of `among` too."""
    out = np.zeros(len(values), dtype=bool)
    rows = np.flatnonzero(among)
    if not len(rows):
        return out
    _, inverse, counts = np.unique(values[rows], return_inverse=True, return_counts=True)
    out[rows] = counts[inverse.ravel()] > 1
    return out


def _decrypted(path: Path, secret_key_file: Path, refuse: Callable[[str, str], NoReturn]) -> bytes:
    try:
        secret = get_private_key(str(secret_key_file), lambda: "")
    except Exception:  # crypt4gh raises bare exceptions for a bad key file
        refuse(
            f"the population key {secret_key_file} cannot be read",
            "set KUHR_POPULATION_KEY_FILE to the key `kuhr-pipeline keys population` wrote",
        )
    out = io.BytesIO()
    with path.open("rb") as infile:
        try:
            c4gh_lib.decrypt([(0, secret, None)], infile, out)
        except Exception:  # the library's errors say no more than "cannot"
            refuse(
                f"{path} cannot be decrypted with the registry's population key",
                "encrypt the population to the key `kuhr-pipeline keys population` printed",
            )
    return out.getvalue()


def load_population(loaded: LoadedSpec) -> Population | None:
    """The spec's population, read with the deployment's population key (None without one)."""
    if loaded.population_file is None:
        return None
    key_file = settings.population_key_file()
    if not key_file:
        raise KeyFileError.single(
            f"${settings.POPULATION_KEY_VARIABLE}",
            settings.POPULATION_KEY_VARIABLE,
            "is not set, so the spec's population file cannot be read",
            f"export {settings.POPULATION_KEY_VARIABLE}=keys/population.sec (kuhr-pipeline keys population makes it)",
        )
    return read_population(
        loaded.population_file, Path(key_file), str(loaded.path), with_lopenr=loaded.spec.pseudonym_form == "lopenr"
    )


def new_population_key(secret_key_file: Path) -> Path:
    """The registry's population key pair: the secret at `secret_key_file` (0600, refused if it
    exists) and its public half beside it (`.pub`), which projects encrypt their files to."""
    public = secret_key_file.with_suffix(".pub")
    for path in (secret_key_file, public):
        if path.exists():
            raise KeysExist.single(
                str(path), "keys population", "exists already; keys are never overwritten", "move it away first"
            )
    secret_key_file.parent.mkdir(parents=True, exist_ok=True)
    c4gh.generate(str(secret_key_file), str(public), passphrase=None, comment=b"kuhr-pipeline population key")
    secret_key_file.chmod(0o600)
    return public


def encrypt_population(csv_file: Path, public_key_file: Path, out: Path) -> int:
    """A population CSV encrypted to the registry's population key (for a project, or a test); the
    rows it holds. Refuses a CSV without an `fnr` column; writes `out` whole or not at all."""
    table = pacsv.read_csv(csv_file, convert_options=pacsv.ConvertOptions(column_types={"fnr": pa.string()}))
    if "fnr" not in table.column_names:
        raise SpecRefused.single(
            str(csv_file), "fnr", "is not a column of the file", "give the header fnr or fnr,lopenr"
        )
    recipient = get_public_key(str(public_key_file))
    writer = X25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        with csv_file.open("rb") as plain, tmp.open("wb") as encrypted:
            c4gh_lib.encrypt([(0, writer, recipient)], plain, encrypted)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return table.num_rows
