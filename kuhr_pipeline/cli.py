"""`kuhr-pipeline`: the command line of the delivery contract.

User-caused errors (KuhrError) print one clear message and exit with their code, never a
traceback; set KUHR_DEBUG=1 to see tracebacks of unexpected errors.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import traceback
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import click

from kuhr_pipeline import __version__, settings
from kuhr_pipeline.errors import KeyFileError, KuhrError, Problem, SignerKeyError
from kuhr_pipeline.report import SMALL_COHORT_ADVICE


def _fail(message: str, code: int) -> None:
    click.echo(message, err=True)
    sys.exit(code)


JSON_FLAG = "--json"
JSON_HELP = "Print one JSON object (with ok and exit_code), also on failure."


def _result(as_json: bool, text: str, exit_code: int = 0, /, **fields: object) -> None:
    """A command's outcome: a line for a person, or with --json one object a script reads (`ok`,
    `exit_code` and the command's fields); a non-zero code ends the command with it."""
    if as_json:
        click.echo(
            json.dumps({"ok": exit_code == 0, "exit_code": exit_code, **fields}, ensure_ascii=False, default=str)
        )
        if exit_code:
            click.echo(text, err=True)
            sys.exit(exit_code)
        return
    if exit_code:
        _fail(text, exit_code)
    click.echo(text)


def _failed_json(message: str, code: int, problems: list[Problem]) -> None:
    """What --json prints when a command fails before it could say anything itself."""
    fields = [{"file": p.file, "field": p.field, "problem": p.problem, "fix": p.fix} for p in problems]
    click.echo(json.dumps({"ok": False, "exit_code": code, "error": message, "problems": fields}, ensure_ascii=False))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="kuhr-pipeline")
def cli() -> None:
    """Research extracts from KUHR: approved spec → pseudonymised, validated, encrypted, signed delivery."""


@cli.command()
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder to create.")
@click.option("--persons", default=10_000, show_default=True, type=int)
@click.option("--from-year", default=2018, show_default=True, type=int)
@click.option("--to-year", default=2024, show_default=True, type=int)
@click.option("--seed", default=42, show_default=True, type=int)
@click.option(
    "--order",
    default="time",
    show_default=True,
    type=click.Choice(["time", "person"]),
    help="time: each year one file sorted by time, as the register exports; person: a person's claims together.",
)
def synth(out: Path, persons: int, from_year: int, to_year: int, seed: int, order: str) -> None:
    """Write a synthetic KUHR source in the source contract.

    \b
    Example:
      kuhr-pipeline synth --out data/sample --persons 5000 --from-year 2019 --to-year 2025"""
    from tqdm import tqdm

    from kuhr_pipeline.synth.generate import expected_claims, generate_source

    with tqdm(
        total=expected_claims(persons, to_year - from_year + 1),
        unit=" claims",
        unit_scale=True,
        desc="synth",
        file=sys.stderr,
    ) as bar:
        report = generate_source(out, persons, from_year, to_year, seed, on_progress=bar.update, order=order)
        bar.total = bar.n
        bar.refresh()
    click.echo(
        f"{report.path}: {report.claims:,} claims for {report.persons:,} persons, {report.years[0]}–{report.years[-1]}"
    )


def _source_years() -> list[int]:
    """The years with claims of the deployment's source, for `check`'s advice; none when there is
    no readable source here (a spec is checked on its own)."""
    from kuhr_pipeline.source import open_source

    try:
        return open_source(settings.source_dir()).years_with_claims()
    except KuhrError:
        return []


@cli.command()
@click.argument("specs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def check(specs: tuple[Path, ...], as_json: bool) -> None:
    """Check specs against the contract and the catalogue: every file, each refusal said (exit 0
    all valid, 2 any refused).

    \b
    Examples:
      kuhr-pipeline check applications/HDS-2026-0042.yaml
      kuhr-pipeline check applications/*.yaml"""
    from kuhr_pipeline.application import load_spec
    from kuhr_pipeline.identity.population import load_population
    from kuhr_pipeline.source.scan import period_before_source

    refused: list[KuhrError] = []
    checked: list[dict[str, object]] = []
    source_years = _source_years()
    say: Callable[[str], None] = (lambda line: None) if as_json else click.echo
    for spec in specs:
        try:
            loaded = load_spec(spec)
            population = load_population(loaded)
        except KuhrError as error:
            refused.append(error)
            checked.append({"file": str(spec), "ok": False, "problems": [str(p) for p in error.problems]})
            continue
        say(f"ok: {spec}: {loaded.application_id} ({loaded.spec.data_level})")
        if population is not None:
            say(f"population: {population.rows:,} rows, {population.not_used:,} not used (invalid or duplicate)")
        before = period_before_source(source_years, loaded.spec.period.from_) if source_years else None
        advisories = [
            *loaded.advisories,
            *([f"period.from {before[0]} (deliver refuses it: {before[1]})"] if before else []),
        ]
        for advisory in advisories:
            say(f"advisory: {advisory}")
        checked.append(
            {
                "file": str(spec),
                "ok": True,
                "application_id": loaded.application_id,
                "data_level": loaded.spec.data_level,
                "spec_sha256": loaded.sha256,
                "advisories": advisories,
            }
        )
    problems = [problem for error in refused for problem in error.problems]
    if as_json:
        _result(True, "\n".join(f"error: {p}" for p in problems), 2 if refused else 0, specs=checked)
    elif refused:
        raise KuhrError(problems)


@cli.command()
@click.argument("spec", type=click.Path(path_type=Path))
@click.option("--source", type=click.Path(path_type=Path), help="Source dataset (default $KUHR_SOURCE).")
@click.option("--out", type=click.Path(path_type=Path), help="Deliveries folder (default $KUHR_DELIVERIES).")
@click.option("--again", is_flag=True, help="Deliver a spec that was delivered unchanged before (on purpose).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object describing the delivery.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the delivery folder (no progress).")
@click.option("-v", "--verbose", is_flag=True, help="Show Dagster's own log lines and a failed step's trace.")
@click.option(
    "--executor",
    type=click.Choice(["in_process", "multiprocess", "celery"]),
    default="in_process",
    show_default=True,
    help="Where the steps run: this process, a process per step, or Celery workers ($KUHR_CELERY_BROKER).",
)
def deliver(
    spec: Path,
    source: Path | None,
    out: Path | None,
    again: bool,
    as_json: bool,
    quiet: bool,
    verbose: bool,
    executor: str,
) -> None:
    """Deliver one application: run its Dagster job from this process and print the delivery folder.

    An unchanged spec (same canonical hash) already delivered into the deliveries folder is
    refused (exit 2) unless --again: every delivery is a disclosure. Exit 1: the run or its
    validation failed (nothing delivered); 2: refused spec or usage; 3: a missing or unusable
    key, source or audit log, or no Celery worker for --executor celery.

    \b
    Examples:
      kuhr-pipeline deliver applications/HDS-2026-0042.yaml
      kuhr-pipeline deliver applications/HDS-2026-0042.yaml --again --json"""
    from kuhr_pipeline.quality import gx_process

    if quiet and verbose:
        raise click.UsageError("give -q or -v, not both")
    gx_process.start()  # Great Expectations loads in its own process while Dagster loads in this one
    if "kuhr_pipeline.defs.launch" not in sys.modules:
        # Importing Dagster makes some 270 000 objects and no garbage: collecting while importing,
        # and walking those objects again in every full collection of the run, is time lost
        # (bench/README.md). Only when this call imports: freezing later would keep garbage for good.
        gc.disable()
        try:
            import kuhr_pipeline.defs.launch  # noqa: F401
        finally:
            gc.freeze()
            gc.enable()
    from kuhr_pipeline.defs.launch import run_delivery

    delivered = run_delivery(
        spec,
        source=source,
        deliveries=out,
        echo=(lambda m: None) if quiet else (lambda m: click.echo(m, err=True)),
        again=again,
        verbosity="quiet" if quiet else "verbose" if verbose else "normal",
        executor=executor,
    )
    _result(as_json, str(delivered.path), **delivered.as_json())
    if delivered.persons.startswith("<") and not quiet:
        click.echo(f"advisory: {SMALL_COHORT_ADVICE.format(persons=delivered.persons)}", err=True)
    if not quiet and not as_json:
        click.echo(
            f"prepared by run {delivered.run_id}, not yet released: a registered reviewer other than the preparer "
            f"releases it with `kuhr-pipeline release {delivered.delivery_id} --key REVIEWER.key`",
            err=True,
        )


@cli.command()
@click.argument("spec", type=click.Path(path_type=Path))
@click.option("--source", type=click.Path(path_type=Path), help="Source dataset (default $KUHR_SOURCE).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: the application id and attrition.")
def estimate(spec: Path, source: Path | None, as_json: bool) -> None:
    """How many persons the cohort would hold, before approval: the masked attrition (for a
    statistics spec also the table's cells and those primary suppression would hide).

    Accepts a draft spec (and says so); refuses whatever else the contract refuses. Nothing is
    delivered; the deployment's audit log records the estimate (it reads the register), and
    KUHR_ESTIMATES_PER_DAY (default 10) per application id and day are answered (exit 2 past it).

    \b
    Example:
      kuhr-pipeline estimate applications/HDS-2026-0042.yaml"""
    from tqdm import tqdm

    from kuhr_pipeline.estimate import estimate as estimate_spec
    from kuhr_pipeline.identity.keys import read_master_key, read_signing_key
    from kuhr_pipeline.source import open_source

    key = read_signing_key(settings.signing_key_file())
    master_key = read_master_key(settings.pseudonym_key_file())  # the record keys of the cell key method
    scanned = open_source(settings.source_dir(str(source) if source else None))
    with tqdm(unit=" claims", unit_scale=True, desc="estimate", file=sys.stderr, disable=as_json) as bar:
        result = estimate_spec(
            spec,
            scanned,
            settings.deliveries_dir(),
            key,
            master_key,
            lambda stage, rows: bar.update(rows) if stage.startswith("pass") else None,
        )
    if result.draft:
        click.echo(f"note: {spec}: a draft: estimated only; it is delivered once approved", err=True)
    if as_json:
        _result(True, "", **result.as_json())
        return
    for line in result.lines():
        click.echo(line)


@cli.command()
@click.argument("spec", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder for dummy deliveries.")
@click.option("--persons", default=200, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--seed", default=1, show_default=True, type=int)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def dummy(spec: Path, out: Path, persons: int, seed: int, as_json: bool) -> None:
    """A synthetic delivery with the exact shape of the spec's real one, for writing code before
    approval: synthetic persons who meet the cohort's rules, pseudonyms from a key made for the
    dummy alone, encrypted to the spec's recipients, signed, and marked `synthetic: true`.
    Needs no source; accepts a draft spec.

    \b
    Example:
      kuhr-pipeline dummy applications/HDS-2026-0042.yaml --out dummies"""
    from kuhr_pipeline.dummy import deliver_dummy
    from kuhr_pipeline.identity.keys import read_signing_key

    if out.resolve() == settings.deliveries_dir().resolve():
        _fail(f"error: {out}: --out: is the deliveries folder (fix: give a folder of its own for dummies)", 2)
    key = read_signing_key(settings.signing_key_file())
    published = deliver_dummy(spec, out, key, persons, seed, on_step=lambda line: click.echo(line, err=True))
    text = f"dummy delivery (synthetic, no real person): {published.path}"
    _result(as_json, text, path=str(published.path), delivery_id=published.delivery_id, synthetic=True)


def _signer(signer_pub: Path | None) -> object:
    from kuhr_pipeline.identity.keys import read_signing_key
    from kuhr_pipeline.identity.new_keys import load_signer_public

    if signer_pub:
        return load_signer_public(signer_pub)
    if settings.signing_key_file():
        try:
            return read_signing_key(settings.signing_key_file()).public_key()
        except KeyFileError as error:
            raise SignerKeyError(error.problems) from None
    raise SignerKeyError.single(
        "(none)",
        "--signer-pub",
        "no signer key to verify against",
        "give --signer-pub FILE (the data manager's signing public key)",
    )


@cli.command()
@click.argument("delivery", type=click.Path(path_type=Path))
@click.option("--signer-pub", type=click.Path(path_type=Path), help="Ed25519 public key (PEM) of the signer.")
@click.option("--reviewers", type=click.Path(path_type=Path), help="Reviewers' public keys (default $KUHR_REVIEWERS).")
@click.option("--prepared", is_flag=True, help="A package not released yet: check it as prepared (no releases).")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def verify(delivery: Path, signer_pub: Path | None, reviewers: Path | None, prepared: bool, as_json: bool) -> None:
    """Check the signature, every file's size and SHA-256, and the reviewers' releases (exit 0
    intact and released, 1 not).

    \b
    Example:
      kuhr-pipeline verify deliveries/HDS-2026-0042/<id> --signer-pub keys/signing.pub --reviewers keys/reviewers"""
    from kuhr_pipeline.delivery.reviewers import registered_reviewers, required_reviews, reviewers_dir, verify_releases
    from kuhr_pipeline.delivery.verify import verify_delivery

    problems = verify_delivery(delivery, _signer(signer_pub))  # type: ignore[arg-type]
    synthetic = not problems and json.loads((delivery / "manifest.json").read_bytes()).get("synthetic") is True
    if synthetic:  # a dummy (synthetic persons, signed as such) is never reviewed
        text = f"intact (a synthetic dummy, no real person; not reviewed): {delivery}"
        _result(as_json, text, delivery=str(delivery), intact=True, synthetic=True, problems=[])
        return
    if not prepared and not problems:
        try:
            registered = registered_reviewers(reviewers or reviewers_dir())
        except KeyFileError as error:
            raise SignerKeyError(error.problems) from None
        problems = verify_releases(delivery, registered, required_reviews())
    text = (
        "NOT intact:\n" + "\n".join(f"  {p}" for p in problems)
        if problems
        else f"intact{' (prepared, not released)' if prepared else ' and released'}: {delivery}"
    )
    state = "prepared" if prepared else "released"
    _result(
        as_json, text, 1 if problems else 0, delivery=str(delivery), intact=not problems, state=state, problems=problems
    )


@cli.command()
@click.argument("delivery", type=click.Path(path_type=Path))
@click.option("--sk", required=True, type=click.Path(path_type=Path), help="Recipient's Crypt4GH secret key.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder for the plain files.")
@click.option("--signer-pub", type=click.Path(path_type=Path), help="Ed25519 public key (PEM) of the signer.")
def decrypt(delivery: Path, sk: Path, out: Path, signer_pub: Path | None) -> None:
    """Verify the delivery, then decrypt every data file.

    \b
    Example:
      kuhr-pipeline decrypt deliveries/HDS-2026-0042/<id> --sk my.sec --out plain --signer-pub signing.pub"""
    from kuhr_pipeline.delivery.verify import decrypt_delivery

    for path in decrypt_delivery(delivery, _signer(signer_pub), sk, out):  # type: ignore[arg-type]
        click.echo(str(path))


@cli.group()
def keys() -> None:
    """Key management."""


@keys.command("init")
@click.option("--demo-recipient", help="Also write a Crypt4GH key pair NAME.sec/NAME.pub (demo use).")
@click.option("--recipient-dir", default="keys", show_default=True, type=click.Path(path_type=Path))
def keys_init(demo_recipient: str | None, recipient_dir: Path) -> None:
    """Write a new pseudonym master key and signing key where the environment points (never overwrites).

    \b
    Example:
      kuhr-pipeline keys init"""
    from kuhr_pipeline.identity.new_keys import init_keys

    paths = []
    for variable in (settings.PSEUDONYM_KEY_VARIABLE, settings.SIGNING_KEY_VARIABLE):
        value = os.environ.get(variable)
        if not value:
            raise KeyFileError.single(f"${variable}", variable, "is not set", f"export {variable}=/path/to/key")
        paths.append(Path(value))
    for written in init_keys(paths[0], paths[1], demo_recipient, recipient_dir):
        click.echo(f"wrote {written}")
    population_key = settings.population_key_file()
    if population_key and not Path(population_key).exists():
        from kuhr_pipeline.identity.population import new_population_key

        public = new_population_key(Path(population_key))
        click.echo(f"wrote {population_key}")
        click.echo(f"wrote {public} (projects encrypt population files to it)")


@cli.command()
@click.argument("application_id", required=False)
@click.option("--out", type=click.Path(path_type=Path), help="Deliveries folder (default $KUHR_DELIVERIES).")
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), help="Only packages prepared on or after this day.")
@click.option("--recipient", help="Only packages for the recipient of this name.")
@click.option("--state", type=click.Choice(["prepared", "released", "rejected"]), help="Only packages in this state.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per package, one per line.")
def history(
    application_id: str | None,
    out: Path | None,
    since: datetime | None,
    recipient: str | None,
    state: str | None,
    as_json: bool,
) -> None:
    """The packages prepared (of APPLICATION_ID, or of every application), oldest first, from the
    audit log: state, when, which spec and approval, to whom, who prepared and who reviewed them,
    how the run was started. Exit 1 for an application with no line. `audit verify` checks the log.

    \b
    Examples:
      kuhr-pipeline history HDS-2026-0042
      kuhr-pipeline history --state prepared --json"""
    from kuhr_pipeline.application.find import require_application_id
    from kuhr_pipeline.delivery.history import deliveries_of, filtered

    if application_id is not None:
        require_application_id(application_id, "APPLICATION_ID")
    root = settings.deliveries_dir(str(out) if out else None)
    entries = deliveries_of(root, application_id)
    if application_id is not None and not entries:
        _fail(f"error: {application_id}: APPLICATION_ID: has no line in {root / 'audit.jsonl'}", 1)
    for entry in filtered(entries, since.date() if since else None, recipient, state):
        if as_json:
            click.echo(json.dumps(entry, sort_keys=True, ensure_ascii=False))
            continue
        names = ", ".join(str(r.get("name") or r.get("key_fingerprint", "?")[:19]) for r in entry["recipients"])
        reviewers = ", ".join(r["name"] for r in entry["reviewers"]) or "-"
        click.echo(
            f"{entry['time']}  {entry['application_id']}  {entry['delivery_id']}  {entry['state']:<8}"
            f"  spec {entry['spec_sha256'][:16]}  by {entry['ran_by']} ({entry['trigger'] or '-'})"
            f"  reviewed by {reviewers}  to {names}  {entry['files']} file(s)"
        )


def _reviewing() -> tuple[Path, object, Path | None]:
    from kuhr_pipeline.delivery.reviewers import reviewers_dir
    from kuhr_pipeline.identity.keys import read_signing_key

    return settings.deliveries_dir(), read_signing_key(settings.signing_key_file()), reviewers_dir()


@cli.command()
@click.argument("delivery")
@click.option("--key", "key_file", required=True, type=click.Path(path_type=Path), help="Your reviewer key (PEM).")
@click.option("--note", default="", help="Recorded with your release.")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def release(delivery: str, key_file: Path, note: str, as_json: bool) -> None:
    """Release a prepared package (its .pending folder, or its delivery id) with a registered
    reviewer's key: not the preparer's, not one that released it already. Exit 2 when refused
    (nothing moved). With the last review required (KUHR_REQUIRED_REVIEWS) it moves into place
    for its recipients.

    \b
    Example:
      kuhr-pipeline release deliveries/HDS-2026-0042/.pending/<id> --key anna.key --note 'checked'"""
    from kuhr_pipeline.delivery import release as releasing
    from kuhr_pipeline.delivery.reviewers import required_reviews

    root, signer, reviewers = _reviewing()
    decision = releasing.release(
        delivery,
        key_file,
        note,
        root,
        settings.applications_dir(),
        signer,  # type: ignore[arg-type]
        reviewers,
        required_reviews(),
    )
    text = (
        f"released: {decision.path}"
        if decision.state == "released"
        else f"{decision.reviews} of {decision.required} reviews: {decision.path} waits for another reviewer"
    )
    _result(
        as_json,
        text,
        state=decision.state,
        path=str(decision.path),
        application_id=decision.application_id,
        delivery_id=decision.delivery_id,
        reviews=decision.reviews,
        required=decision.required,
    )


@cli.command()
@click.argument("delivery")
@click.option("--key", "key_file", required=True, type=click.Path(path_type=Path), help="Your reviewer key (PEM).")
@click.option("--reason", required=True, help="Why it is rejected (recorded in the audit log).")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def reject(delivery: str, key_file: Path, reason: str, as_json: bool) -> None:
    """Reject a prepared package: a signed `rejected` line with your name and reason; the package is removed.

    \b
    Example:
      kuhr-pipeline reject <id> --key anna.key --reason 'wrong period'"""
    from kuhr_pipeline.delivery import release as releasing

    root, signer, reviewers = _reviewing()
    decision = releasing.reject(delivery, key_file, reason, root, signer, reviewers)  # type: ignore[arg-type]
    text = f"rejected: {decision.application_id} {decision.delivery_id} (removed)"
    _result(as_json, text, state="rejected", application_id=decision.application_id, delivery_id=decision.delivery_id)


@keys.command("population")
def keys_population() -> None:
    """The registry's population key pair at $KUHR_POPULATION_KEY_FILE (and .pub beside it): projects
    encrypt their population files (utvalgsfiler) to the public half it prints.

    \b
    Example:
      kuhr-pipeline keys population"""
    from kuhr_pipeline.identity.population import new_population_key

    secret = settings.population_key_file()
    if not secret:
        variable = settings.POPULATION_KEY_VARIABLE
        raise KeyFileError.single(f"${variable}", variable, "is not set", f"export {variable}=/path/to/population.sec")
    public = new_population_key(Path(secret))
    click.echo(f"wrote {secret}")
    click.echo(f"wrote {public} (give this to projects: they encrypt their population file to it)")


@cli.group()
def population() -> None:
    """A project's population file (utvalgsfil)."""


@population.command("encrypt")
@click.argument("csv_file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The encrypted file to write (.c4gh).")
@click.option(
    "--key",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="The registry's population public key (default: $KUHR_POPULATION_KEY_FILE with .pub).",
)
def population_encrypt(csv_file: Path, out: Path, key: Path | None) -> None:
    """Encrypt a population CSV (header fnr or fnr,lopenr) to the registry's population key.

    \b
    Example:
      kuhr-pipeline population encrypt utvalg.csv --out applications/populations/hds-2026-0042.c4gh"""
    from kuhr_pipeline.identity.population import encrypt_population

    if key is None:
        secret = settings.population_key_file()
        if not secret:
            variable = settings.POPULATION_KEY_VARIABLE
            raise KeyFileError.single(f"${variable}", variable, "is not set", "give --key the population public key")
        key = Path(secret).with_suffix(".pub")
    rows = encrypt_population(csv_file, key, out)
    click.echo(f"wrote {out} ({rows:,} rows, encrypted to {key.name}; the plaintext CSV is yours to delete)")


@keys.command("reviewer")
@click.argument("name")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder for NAME.key and NAME.pub.")
def keys_reviewer(name: str, out: Path) -> None:
    """A reviewer's key pair: NAME.key (0600, stays with the reviewer) and NAME.pub (register it
    by copying it into the deployment's KUHR_REVIEWERS folder).

    \b
    Example:
      kuhr-pipeline keys reviewer anna --out ~/reviewer-keys"""
    from kuhr_pipeline.delivery.reviewers import new_reviewer

    for written in new_reviewer(name, out):
        click.echo(f"wrote {written}")


@cli.command()
@click.argument("application_id", required=False)
def clean(application_id: str | None) -> None:
    """Remove the staging that killed runs left (of APPLICATION_ID, or of every application).

    Skips an application while a `deliver` of it runs. Runs launched from the UI do not take that
    lock: clean while none of them is running.

    \b
    Example:
      kuhr-pipeline clean HDS-2026-0042"""
    from kuhr_pipeline.application.find import require_application_id
    from kuhr_pipeline.delivery.commit import clean_publishing
    from kuhr_pipeline.locks import application_lock_if_free
    from kuhr_pipeline.staging import clean_staging

    if application_id is not None:
        ids = [require_application_id(application_id, "APPLICATION_ID")]
    else:
        root = settings.staging_root()
        ids = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    lines = clean_staging(ids, application_lock_if_free)
    lines += clean_publishing(settings.deliveries_dir())
    for line in lines or ["nothing to clean"]:
        click.echo(line)


@cli.group()
def audit() -> None:
    """The delivery audit log."""


@audit.command("verify")
@click.option("--log", "log_file", type=click.Path(path_type=Path), help="Default $KUHR_DELIVERIES/audit.jsonl.")
@click.option("--signer-pub", type=click.Path(path_type=Path), help="Ed25519 public key (PEM) of the signer.")
@click.option("--expect-head", help="N:SHA256 — the log's line N must be the line with this SHA-256 (kept apart).")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def audit_verify(log_file: Path | None, signer_pub: Path | None, expect_head: str | None, as_json: bool) -> None:
    """Check every line's signature, the hash chain, that lines and delivery folders match, that
    each manifest names its line, and that the log still reaches its head (kept signed in
    DAGSTER_HOME, and --expect-head): exit 0 intact, 1 not.

    \b
    Example:
      kuhr-pipeline audit verify --signer-pub keys/signing.pub"""
    from kuhr_pipeline.delivery.audit import AUDIT_LOG, verify_audit

    expected = None
    if expect_head is not None:
        number, _, line_sha = expect_head.partition(":")
        if not number.isdigit() or len(line_sha) != 64:
            raise click.UsageError("--expect-head: give N:SHA256 (a line number and its 64-hex SHA-256)")
        expected = (int(number), line_sha.lower())
    log_file = log_file or settings.deliveries_dir() / AUDIT_LOG
    problems = verify_audit(log_file, log_file.parent, _signer(signer_pub), expected)  # type: ignore[arg-type]
    text = "audit log NOT intact:\n" + "\n".join(f"  {p}" for p in problems) if problems else f"intact: {log_file}"
    _result(as_json, text, 1 if problems else 0, log=str(log_file), intact=not problems, problems=problems)


@audit.command("init")
@click.option("--accept-existing", is_flag=True, help="Accept the delivery folders that exist now.")
@click.option("--reason", default="audit log missing or damaged", show_default=True, help="Recorded in the log.")
def audit_init(accept_existing: bool, reason: str) -> None:
    """Start a new signed chain after the log was lost or damaged: the old log is kept beside it,
    and the break (with every existing delivery folder) is the new chain's first line.

    \b
    Example:
      kuhr-pipeline audit init --accept-existing --reason 'log restored from backup'"""
    from kuhr_pipeline.delivery.audit import AUDIT_LOG, break_chain, require_broken_log
    from kuhr_pipeline.delivery.folders import published_deliveries
    from kuhr_pipeline.identity.keys import read_signing_key

    root = settings.deliveries_dir()
    folders = published_deliveries(root)
    if folders and not accept_existing:
        raise KuhrError.single(
            str(root), "--accept-existing", f"{len(folders)} delivery folders exist", "add --accept-existing"
        )
    key = read_signing_key(settings.signing_key_file())
    require_broken_log(root, key.public_key())
    kept = break_chain(root / AUDIT_LOG, root, key, reason)
    click.echo(f"new chain: {root / AUDIT_LOG} ({len(folders)} existing deliveries accepted)")
    if kept:
        click.echo(f"the old log is kept as {kept}")


def console() -> None:
    """The installed `kuhr-pipeline` command: `main`, then an exit without Python's last garbage
    collections. The process ends with the command, so the OS frees what is left; the final
    collections walked every object Dagster had made (their cost: bench/README.md)."""
    try:
        main()
    finally:
        gc.freeze()


def main(argv: list[str] | None = None) -> None:
    as_json = JSON_FLAG in (sys.argv[1:] if argv is None else argv)
    try:
        cli.main(args=argv, prog_name="kuhr-pipeline", standalone_mode=False)
    except KuhrError as error:
        if as_json:
            _failed_json(str(error), error.exit_code, error.problems)
        _fail(f"error: {error}", error.exit_code)
    except click.exceptions.Abort:
        _fail("aborted", 1)
    except click.ClickException as error:
        if as_json:
            _failed_json(error.format_message(), 2, [])
        error.show()
        sys.exit(2)
    except Exception as error:  # a bug, not the user's fault: still no traceback unless asked for
        if os.environ.get("KUHR_DEBUG"):
            traceback.print_exc()
        _fail(f"internal error: {error.__class__.__name__}: {error} (set KUHR_DEBUG=1 for details)", 1)
    sys.exit(0)
