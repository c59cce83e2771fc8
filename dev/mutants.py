"""Mutants the fast tests must kill: each change below, applied alone to a copy of the package,
must make the named tests (all fast: not marked slow) fail. Run: `.venv/bin/python dev/mutants.py`
(about ten minutes); `--only NAME` (repeatable) runs those. Prints one line per mutant and exits 1 if one survives.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# name: (file, original text, mutated text, the tests that must fail)
MUTANTS: dict[str, tuple[str, str, str, list[str]]] = {
    "fylke from digits 2-3": (
        "kuhr_pipeline/extract/generalise.py",
        "pc.utf8_slice_codeunits(values, 0, 2)",
        "pc.utf8_slice_codeunits(values, 1, 3)",
        ["tests/test_contract_values.py"],
    ),
    "month labels one month early": (
        "kuhr_pipeline/extract/generalise.py",
        'f"{key // 100:04d}-{key % 100:02d}"',
        'f"{key // 100:04d}-{key % 100 - 1:02d}"',
        ["tests/test_contract_values.py"],
    ),
    "bydel folding removed": (
        "kuhr_pipeline/extract/generalise.py",
        '_BYDELER = [(312, 335, "0301"), (1161, 1165, "1103"), (1202, 1210, "1201"), (1603, 1607, "1601")]',
        "_BYDELER: list[tuple[int, int, str]] = []",
        ["tests/test_contract_values.py"],
    ),
    "90+ from 91": (
        "kuhr_pipeline/extract/generalise.py",
        "if age >= OPEN_AGE else",
        "if age > OPEN_AGE else",
        ["tests/test_contract_values.py"],
    ),
    "practitioners hashed in the patients' domain": (
        "kuhr_pipeline/identity/pseudonym.py",
        'return f"{linkage_domain}/behandler"',
        "return linkage_domain",
        ["tests/test_contract_values.py"],
    ),
    "margins along the first dimension only": (
        "kuhr_pipeline/disclosure/equations.py",
        "for d, value in enumerate(key):",
        "for d, value in list(enumerate(key))[:1]:",
        ["tests/test_suppression.py", "tests/test_suppression_oracle.py"],
    ),
    "no linear programme in the audit": (
        "kuhr_pipeline/disclosure/audit.py",
        "                out.append(PinnedValue(cells[i], measure, value))",
        "                pass",
        ["tests/test_suppression_oracle.py"],
    ),
    "hypercubes blind to sums of 0": (
        "kuhr_pipeline/disclosure/hypercubes.py",
        "            valid &= ~((zero & (signs > 0)).any(axis=1) & (zero & (signs < 0)).any(axis=1))",
        "            pass",
        ["tests/test_suppression_oracle.py"],
    ),
    "the proof accepts a hypercube with a shown corner": (
        "kuhr_pipeline/disclosure/proof.py",
        "        if signs is None or not hidden[corners].all():",
        "        if signs is None:",
        ["tests/test_proof.py"],
    ),
    "attrition shows the threshold itself unmasked": (
        "kuhr_pipeline/cohort/attrition.py",
        "return mask_count(count, self.threshold, self.rounding)",
        "return mask_count(count, rounding=self.rounding)",
        ["tests/test_contract_values.py"],
    ),
    "no lock per application": (
        "kuhr_pipeline/locks.py",
        "            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n        except BlockingIOError:\n            on_wait()",
        "            pass\n        except BlockingIOError:\n            on_wait()",
        ["tests/test_delivery_commit.py"],
    ),
    "repeated claims not refused": (
        "kuhr_pipeline/source/claim_ids.py",
        "        if len(repeated):",
        "        if False:",
        ["tests/test_bad_input.py"],
    ),
    "free text delivered without its approval": (
        "kuhr_pipeline/application/rules.py",
        'if variable.role == "free_text" and request.free_text != "approved" and not group_by:',
        "if False:",
        ["tests/test_spec.py"],
    ),
    "a refused file named on every tick": (
        "kuhr_pipeline/defs/sensors.py",
        "cursor.refused.get(str(f.path)) != f.version",
        "True",
        ["tests/test_sensor_schedule.py"],
    ),
    "a failed check ends without its sentence": (
        "kuhr_pipeline/defs/failures.py",
        "    yield result\n    if not result.passed:",
        "    yield result\n    if False:",
        ["tests/test_delivery.py"],
    ),
    "a failure recorded with its stack": (
        "kuhr_pipeline/defs/failures.py",
        "class Sentence(DagsterUserCodeProcessError, dg.Failure):",
        "class Sentence(dg.Failure):",
        ["tests/test_delivery.py", "tests/test_partitions.py"],
    ),
    "audit lines not signed-checked": (
        "kuhr_pipeline/delivery/audit.py",
        "        if not _signed_by(record, signer):",
        "        if False:",
        ["tests/test_audit.py"],
    ),
    "small counts shown unmasked": (
        "kuhr_pipeline/disclosure/masking.py",
        "    if 0 < count < threshold:",
        "    if False:",
        ["tests/test_masking.py"],
    ),
    "dead runs never released": (
        "kuhr_pipeline/defs/stale_runs.py",
        "if process and is_gone(process):",
        "if False:",
        ["tests/test_faults.py"],
    ),
    "staging folders open to others": (
        "kuhr_pipeline/sealed.py",
        "FOLDER_MODE = 0o700",
        "FOLDER_MODE = 0o755",
        ["tests/test_faults.py"],
    ),
    "no insider in the hypercube search": (
        "kuhr_pipeline/disclosure/hypercubes.py",
        "        if threats is not None and not threats:",
        "        if threats is not None:",
        ["tests/test_suppression.py", "tests/test_suppression_oracle.py"],
    ),
    "no insider in the proof": (
        "kuhr_pipeline/disclosure/proof.py",
        "        if any(not same_person(",
        "        if False and any(not same_person(",
        ["tests/test_proof.py"],
    ),
    "no dominance rule": (
        "kuhr_pipeline/disclosure/suppression.py",
        "if total and top > DOMINANCE_SHARE * total]",
        "if False]",
        ["tests/test_suppression.py"],
    ),
    "code systems ignored": (
        "kuhr_pipeline/cohort/criteria.py",
        "        in_system = hits.rows(SYSTEM_COLUMN, [system])",
        "        in_system = np.ones(hits.batch.num_rows, dtype=bool)",
        ["tests/test_code_systems.py"],
    ),
    "washout one day short": (
        "kuhr_pipeline/cohort/windows.py",
        "return (latest >= index_days - washout) & (latest < index_days)",
        "return (latest > index_days - washout) & (latest < index_days)",
        ["tests/test_windows.py"],
    ),
    "each release chooses its pattern afresh": (
        "kuhr_pipeline/defs/assets.py",
        'staging.sub("statistics"), previous)',
        'staging.sub("statistics"), set())',
        ["tests/test_masking.py"],
    ),
    "staging kept after a run": (
        "kuhr_pipeline/staging.py",
        "    shutil.rmtree(folder, ignore_errors=True)",
        "    return None",
        ["tests/test_delivery.py"],
    ),
    "claims of known persons not counted": (
        "kuhr_pipeline/cohort/person_labels.py",
        "per_reason[IdReason.VALID] = len(ids) - len(unknown)",
        "per_reason[IdReason.VALID] = 0",
        ["tests/test_person_labels.py"],
    ),
    "a year in time order left unsorted": (
        "kuhr_pipeline/synth/generate.py",
        '.sort_by("behandlingstidspunkt")',
        "",
        ["tests/test_synth.py"],
    ),
    "dummy claims the exclusion matches": (
        "kuhr_pipeline/dummy/source.py",
        "fits &= ~match(table, exclude)",
        "fits &= True",
        ["tests/test_dummy.py::test_dummy_persons_meet_every_cohort_rule"],
    ),
    "dummy age drawn for the last entry claim": (
        "kuhr_pipeline/dummy/source.py",
        "birth = _birth(rng, days[0],",
        "birth = _birth(rng, days[-1],",
        ["tests/test_dummy.py::test_dummy_persons_meet_every_cohort_rule"],
    ),
    "a dummy not said to be synthetic": (
        "kuhr_pipeline/delivery/publish.py",
        '"synthetic": contents.synthetic,',
        '"synthetic": False,',
        ["tests/test_dummy.py"],
    ),
    "equal hashes taken as distinct ids": (
        "kuhr_pipeline/source/claim_ids.py",
        "    return np.unique(every[1:][every[1:] == every[:-1]])",
        "    return np.zeros(0, dtype=np.uint64)",
        ["tests/test_bad_input.py::test_repeated_claim_ids_are_found_whatever_their_lengths"],
    ),
    "a year's record taken for other versions of its files": (
        "kuhr_pipeline/source/claim_ids.py",
        "and _canonical(body[\"version\"]) == _canonical(",
        "and True or _canonical(body[\"version\"]) == _canonical(",
        ["tests/test_bad_input.py::test_a_year_found_clean_is_not_read_again_until_its_files_change"],
    ),
    "a year's record taken unsigned": (
        "kuhr_pipeline/source/claim_ids.py",
        "return hmac.compare_digest(mac, self._mac(body)) and",
        "return True and",
        ["tests/test_bad_input.py::test_a_year_found_clean_is_not_read_again_until_its_files_change"],
    ),
    "a person searched in the first slot only": (
        "kuhr_pipeline/cohort/person_labels.py",
        "        while len(probing):",
        "        while False:",
        ["tests/test_person_labels.py"],
    ),
    "a step stopped elsewhere still published": (
        "kuhr_pipeline/delivery/publish.py",
        "            if not still_wanted():",
        "            if False:",
        ["tests/test_delivery_commit.py::test_a_run_stopped_from_elsewhere_while_it_packs_publishes_nothing"],
    ),
    "the scan groups' entry claims not added up": (
        "kuhr_pipeline/cohort/first_claims.py",
        '    return chosen.set_column(chosen.schema.get_field_index("entry_claims"), "entry_claims", pa.array(counts))',
        "    return chosen",
        ["tests/test_cohort.py::test_a_year_at_a_time_gives_the_same_cohort_and_claims"],
    ),
    "the scan groups' claims gathered out of order": (
        "kuhr_pipeline/cohort/select.py",
        "parts = sorted(parts, key=lambda part: part.group.index)",
        "parts = sorted(parts, key=lambda part: -part.group.index)",
        ["tests/test_cohort.py::test_a_year_at_a_time_gives_the_same_cohort_and_claims"],
    ),
    "a person counted once in each scan group": (
        "kuhr_pipeline/cohort/select.py",
        "len(np.unique(np.concatenate(",
        "len((np.concatenate(",
        ["tests/test_cohort.py::test_a_year_at_a_time_gives_the_same_cohort_and_claims"],
    ),
    "a step process outlives deliver": (
        "kuhr_pipeline/processes.py",
        "libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)",
        "libc.prctl(_PR_SET_PDEATHSIG, 0, 0, 0, 0)",
        ["tests/test_step_processes.py"],
    ),
    "staged batches as they were handed in": (
        "kuhr_pipeline/staging.py",
        "end = table.num_rows - table.num_rows % BATCH_ROWS if whole_batches_only else table.num_rows",
        "end = table.num_rows",
        ["tests/test_staging.py"],
    ),
    "an extract for a statistics application": (
        "kuhr_pipeline/defs/assets.py",
        """        context.log.info("extract: not made (data_level statistics: the delivery is the statistics table)")
        return
""",
        """        context.log.info("extract: not made (data_level statistics: the delivery is the statistics table)")
        staging = run_staging(context.run_id, application.application_id, paths, pseudonym_key)
        yield dg.Output(ExtractFiles({}, staging.schema(cohort.path)))  # the empty extract of before
        return
""",
        ["tests/test_delivery.py::test_a_run_materialises_only_the_table_of_its_data_level"],
    ),
    "a skipped check said to have emitted no result": (
        "kuhr_pipeline/defs/delivery_steps.py",
        'logging.getLogger("dagster._core.execution.plan.active").addFilter(_NotMadeIsNotUnchecked())',
        "",
        ["tests/test_delivery.py::test_a_run_materialises_only_the_table_of_its_data_level"],
    ),
    "any table packaged whatever the data level": (
        "kuhr_pipeline/delivery/package.py",
        "if not isinstance(made, approved):",
        "if not isinstance(made, (ExtractFiles, StatisticsTable)):",
        ["tests/test_delivery.py::test_only_the_approved_data_level_is_ever_packaged"],
    ),
}


def run(name: str, work: Path) -> tuple[bool, str]:
    """Whether the mutant's tests fail on a copy with the mutation (name "" = no mutation, all tests)."""
    file, original, mutated, tests = (
        MUTANTS[name] if name else ("", "", "", sorted({t for m in MUTANTS.values() for t in m[3]}))
    )
    copy = work / "repo"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(
        REPO,
        copy,
        ignore=shutil.ignore_patterns(".venv", ".git", "data", "deliveries", "decrypted", "keys", "test-artifacts"),
    )
    if name:
        target = copy / file
        text = target.read_text()
        assert text.count(original) == 1, f"{name}: the original text is not in {file} exactly once"
        target.write_text(text.replace(original, mutated))
    env = {**os.environ, "PYTHONPATH": str(copy)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-m", "not slow", "-p", "no:cacheprovider", *tests],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
    )
    failed = [line.split(" ")[1] for line in result.stdout.splitlines() if line.startswith("FAILED ")]
    return result.returncode != 0, ", ".join(failed) or result.stdout.strip().splitlines()[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", choices=sorted(MUTANTS), action="append", help="this mutant only (repeatable)")
    args = parser.parse_args()
    survivors = 0
    with tempfile.TemporaryDirectory(prefix="kuhr-mutants-") as work:
        failed, detail = run("", Path(work))
        if failed:
            print(f"the unmutated copy fails its tests ({detail}): no mutant can be judged")
            return 2
        for name in args.only or MUTANTS:
            killed, detail = run(name, Path(work))
            survivors += not killed
            print(f"{'killed  ' if killed else 'SURVIVED'} {name}: {detail}", flush=True)
    return 1 if survivors else 0


if __name__ == "__main__":
    raise SystemExit(main())
