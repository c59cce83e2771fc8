"""Dagster for real: webserver and daemon on loopback, the sensor's run, a run launched through the
GraphQL API the UI uses, and the asset graph page in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from kuhr_pipeline.delivery.reviewers import new_reviewer
from kuhr_pipeline.identity.new_keys import init_keys
from kuhr_pipeline.synth import generate_source
from tests.conftest import REPO, PostgresDatabase, make_recipient
from tests.helpers import run_cli, write_spec

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
ARTIFACTS = REPO / "test-artifacts"
APP = "UI-0001"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Dagster:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.meant_to_fail: set[str] = set()  # runs a test expects to fail (the gate's refusals)

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(f"{self.url}/graphql", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())["data"]

    def runs(self, application_id: str = APP) -> list[dict]:
        data = self.graphql(
            """query Runs($tags: [ExecutionTag!]) { runsOrError(filter: {tags: $tags}) {
                 ... on Runs { results { runId status } } } }""",
            {"tags": [{"key": "kuhr/application_id", "value": application_id}]},
        )
        return list(data["runsOrError"]["results"])

    def failure(self, run_id: str) -> str:
        data = self.graphql(
            """query Events($runId: ID!) { logsForRun(runId: $runId) { ... on EventConnection { events {
                 __typename ... on MessageEvent { message }
                 ... on ExecutionStepFailureEvent { error { message cause { message } } }
                 ... on RunFailureEvent { error { message } } } } } }""",
            {"runId": run_id},
        )
        events = data["logsForRun"]["events"]
        return json.dumps([e for e in events if "Failure" in e["__typename"] or "error" in e], indent=1)[-4000:]

    def wait_for(self, predicate, what: str, timeout: float = 300.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = self.runs()
            failed = [r for r in runs if r["status"] == "FAILURE" and r["runId"] not in self.meant_to_fail]
            if failed:
                raise AssertionError(f"a run failed: {self.failure(failed[0]['runId'])}")
            if predicate(runs):
                return runs
            time.sleep(2)
        raise AssertionError(f"timed out waiting for {what}: {self.runs()}")


@pytest.fixture(scope="module")
def dagster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Dagster, dict[str, Path]]]:
    root = tmp_path_factory.mktemp("ui")
    home, apps, deliveries, source = root / "home", root / "applications", root / "deliveries", root / "source"
    apps.mkdir()
    database = PostgresDatabase()  # the production instance config, on the machine's PostgreSQL
    instance_env = database.home(home)
    init_keys(root / "keys" / "pseudonym.key", root / "keys" / "signing.pem", None, root / "keys")
    generate_source(source, persons=400, from_year=2019, to_year=2020, seed=3)
    env = {
        **os.environ,
        **instance_env,
        "KUHR_APPLICATIONS": str(apps),
        "KUHR_SOURCE": str(source),
        "KUHR_DELIVERIES": str(deliveries),
        "KUHR_PSEUDONYM_KEY_FILE": str(root / "keys" / "pseudonym.key"),
        "KUHR_SIGNING_KEY_FILE": str(root / "keys" / "signing.pem"),
        "DAGSTER_DG_UPDATE_CHECK_ENABLED": "0",
        "KUHR_REVIEWERS": str(root / "keys" / "reviewers"),
        "KUHR_RAN_BY": "dagster-service",
    }
    (root / "keys" / "reviewers").mkdir()
    new_reviewer("anna", root / "keys")
    shutil.copy(root / "keys" / "anna.pub", root / "keys" / "reviewers" / "anna.pub")
    port = free_port()
    logs = [open(root / "webserver.log", "w"), open(root / "daemon.log", "w")]  # noqa: SIM115
    processes = [
        subprocess.Popen(
            [str(BIN / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            cwd=REPO,
            env=env,
            stdout=logs[0],
            stderr=subprocess.STDOUT,
        ),
        subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
            cwd=REPO,
            env=env,
            stdout=logs[1],
            stderr=subprocess.STDOUT,
        ),
    ]
    server = Dagster(port)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                server.graphql("{ version }")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError((root / "webserver.log").read_text()[-3000:]) from None
                time.sleep(1)
        server.graphql("mutation { setNuxSeen }")  # no community sign-up dialog over the screenshots
        yield (
            server,
            {
                "root": root,
                "apps": apps,
                "deliveries": deliveries,
                "keys": root / "keys",
                "home": home,
                "database": database,
                "env": env,
            },
        )
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in logs:
            log.close()
        database.drop()


def _launch(server: Dagster, run_config: dict | None = None, materialize: bool = False, again: bool = True) -> str:
    """Launch a run of the application's partition through GraphQL, as the UI does; its run id.
    `materialize`: as the asset graph's "Materialize" button does (the implicit asset job, the
    group's assets, the partition tag only). `again`: tagged kuhr/again=true, the one gate's
    "on purpose" (the application is prepared already by the sensor's run)."""
    selector: dict = {"repositoryLocationName": "kuhr_pipeline", "repositoryName": "__repository__"}
    if materialize:
        names = ["application", "cohort", "extract", "statistics", "delivery"]
        selector |= {"jobName": "__ASSET_JOB", "assetSelection": [{"path": [n]} for n in names]}
        tags = [{"key": "dagster/partition", "value": APP}]
    else:
        selector |= {"jobName": "deliver_application"}
        tags = [{"key": "dagster/partition", "value": APP}, {"key": "kuhr/application_id", "value": APP}]
    if again:
        tags.append({"key": "kuhr/again", "value": "true"})
    launched = server.graphql(
        """mutation Launch($params: ExecutionParams!) { launchRun(executionParams: $params) {
             __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }""",
        {
            "params": {
                "selector": selector,
                **({"runConfigData": run_config} if run_config else {}),
                "executionMetadata": {"tags": tags},
            }
        },
    )
    assert launched["launchRun"]["__typename"] == "LaunchRunSuccess", launched
    return launched["launchRun"]["run"]["runId"]


def _ensure_application(paths: dict[str, Path]) -> None:
    """The application APP in the watched folder (the same spec whichever test writes it first)."""
    if not (paths["apps"] / f"{APP}.yaml").exists():
        make_recipient(paths["apps"], "recipient")
        write_spec(
            paths["apps"], {"application_id": APP, "cohort.entry.diagnoses": ["R74", "R78", "A04"]}, name=f"{APP}.yaml"
        )


def _cli(paths: dict[str, Path], *args: object) -> subprocess.CompletedProcess:
    """`kuhr-pipeline ARGS` in the deployment's environment (the webserver's and daemon's)."""
    return subprocess.run(
        [str(BIN / "kuhr-pipeline"), *map(str, args)], env=paths["env"], capture_output=True, text=True, timeout=300
    )


def _history(paths: dict[str, Path]) -> list[dict]:
    out = _cli(paths, "history", APP, "--json")
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def _pending(paths: dict[str, Path]) -> list[Path]:
    return sorted((paths["deliveries"] / APP / ".pending").glob("2*"))


def _released(paths: dict[str, Path]) -> list[Path]:
    return sorted((paths["deliveries"] / APP).glob("2*"))


def test_sensor_ui_and_cli_prepare_and_only_a_reviewer_releases(dagster, capsys) -> None:
    """The sensor's run prepares (never publishes); the same spec from GraphQL is refused by the
    gate, and prepared with kuhr/again=true; a GraphQL run whose config points the deliveries
    elsewhere writes nothing anywhere; a CLI run; history names the three triggers; a reviewer
    releases one."""
    server, paths = dagster
    _ensure_application(paths)
    runs = server.wait_for(lambda rs: any(r["status"] == "SUCCESS" for r in rs), "the sensor's run")
    assert len(runs) == 1
    assert len(_pending(paths)) == 1 and _released(paths) == []  # the sensor never publishes
    code, _, err = run_cli(
        ["verify", _pending(paths)[0], "--prepared", "--signer-pub", paths["keys"] / "signing.pub"], capsys
    )
    assert code == 0, err

    spec_config = {"ops": {"application": {"config": {"spec_path": str(paths["apps"] / f"{APP}.yaml")}}}}
    refused = _launch(server, spec_config, again=False)
    server.meant_to_fail.add(refused)
    server.wait_for(lambda rs: any(r["runId"] == refused and r["status"] == "FAILURE" for r in rs), "the gate")
    assert "is unchanged since delivery" in server.failure(refused)
    shadow = paths["root"] / "shadow"
    elsewhere = _launch(server, {**spec_config, "resources": {"paths": {"config": {"deliveries": str(shadow)}}}})
    server.meant_to_fail.add(elsewhere)
    server.wait_for(lambda rs: any(r["runId"] == elsewhere and r["status"] == "FAILURE" for r in rs), "refusal")
    assert "run config resources.paths: names folders or keys at launch" in server.failure(elsewhere)
    assert not shadow.exists()
    ui_run = _launch(server, spec_config)
    server.wait_for(lambda rs: any(r["runId"] == ui_run and r["status"] == "SUCCESS" for r in rs), "the UI's run")
    cli = _cli(
        {**paths, "env": {**paths["env"], "KUHR_RAN_BY": "kari"}},
        "deliver",
        "--again",
        "-q",
        paths["apps"] / f"{APP}.yaml",
    )
    assert cli.returncode == 0, cli.stderr
    assert len(_pending(paths)) == 3 and _released(paths) == []

    entries = _history(paths)
    assert [e["trigger"] for e in entries] == ["sensor", "ui", "cli"]
    assert [e["ran_by"] for e in entries] == ["dagster-service", "dagster-service", "kari"]
    assert entries[1]["run_id"] == ui_run and all(e["run_id"] for e in entries)
    assert all([r["name"] for r in e["recipients"]] == ["Recipient"] for e in entries)
    release = _cli(paths, "release", entries[2]["path"], "--key", paths["keys"] / "anna.key")
    assert release.returncode == 0, release.stderr
    assert [e["state"] for e in _history(paths)] == ["prepared", "prepared", "released"]
    assert _history(paths)[2]["reviewers"][0]["name"] == "anna"
    audit = _cli(paths, "audit", "verify")
    assert audit.returncode == 0, audit.stderr


def _backfill(server: Dagster, again: bool) -> str:
    """A backfill of the application's partition, as the UI's "Materialize all" launches one."""
    names = ["application", "cohort", "extract", "statistics", "delivery"]
    launched = server.graphql(
        """mutation Backfill($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
             __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }""",
        {
            "params": {
                "assetSelection": [{"path": [n]} for n in names],
                "partitionNames": [APP],
                "tags": [{"key": "kuhr/again", "value": "true"}] if again else [],
            }
        },
    )["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    return str(launched["backfillId"])


def _new_run_ended(server: Dagster, before: set[str], timeout: float = 300.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ended = [r for r in server.runs() if r["runId"] not in before and r["status"] in ("SUCCESS", "FAILURE")]
        if ended:
            return ended[0]
        time.sleep(2)
    raise AssertionError(f"no new run ended within {timeout} s: {server.runs()}")


def test_a_backfill_passes_the_same_gate(dagster) -> None:
    """A backfill of a partition whose spec is prepared already: its run fails in the application
    step with the gate's sentence; with kuhr/again=true it prepares, and history says backfill."""
    server, paths = dagster
    _ensure_application(paths)
    before = {r["runId"] for r in server.runs()}
    _backfill(server, again=False)
    refused = _new_run_ended(server, before)
    server.meant_to_fail.add(refused["runId"])
    assert refused["status"] == "FAILURE" and "is unchanged since delivery" in server.failure(refused["runId"])
    pending = len(_pending(paths))
    before = {r["runId"] for r in server.runs()}
    _backfill(server, again=True)
    prepared = _new_run_ended(server, before)
    assert prepared["status"] == "SUCCESS", server.failure(prepared["runId"])
    assert len(_pending(paths)) == pending + 1
    assert _history(paths)[-1]["trigger"] == "backfill" and _history(paths)[-1]["run_id"] == prepared["runId"]


def test_materialize_from_the_asset_graph_runs_in_one_process_and_is_tagged(dagster) -> None:
    """The UI's "Materialize" of one partition (the implicit asset job, no tags but the partition)
    runs in one process as `deliver` does, is tagged with the application and spec hash by its
    `application` step, and delivers."""
    server, paths = dagster
    _ensure_application(paths)
    before = len(_pending(paths))
    run_id = _launch(server, materialize=True)
    server.wait_for(lambda rs: any(r["runId"] == run_id and r["status"] == "SUCCESS" for r in rs), "the run")
    assert len(_pending(paths)) == before + 1
    tags = dict(paths["database"].query(f"select key, value from run_tags where run_id = '{run_id}'"))
    assert tags["kuhr/application_id"] == APP and len(tags["kuhr/spec_sha256"]) == 16
    engine = server.graphql(
        """query Events($runId: ID!) { logsForRun(runId: $runId) { ... on EventConnection { events {
             __typename ... on EngineEvent { message } } } } }""",
        {"runId": run_id},
    )["logsForRun"]["events"]
    messages = [e["message"] for e in engine if e["__typename"] == "EngineEvent"]
    assert any(m.startswith("Executing steps in process") for m in messages), messages
    assert not any("multiprocess" in m for m in messages), messages


def test_two_runs_of_one_application_never_overlap(dagster) -> None:
    """Two runs of one partition launched at once through the run queue: the daemon starts the
    second only when the first has ended (the tag limit on dagster/partition in the shipped
    dagster.yaml). Each run records its process; neither leaves staging behind."""
    server, paths = dagster
    before = {r["runId"] for r in server.runs()}
    first, second = _launch(server), _launch(server)
    server.wait_for(lambda rs: {r["runId"] for r in rs if r["status"] == "SUCCESS"} >= {first, second}, "both runs")
    assert {r["runId"] for r in server.runs()} - before == {first, second}
    times = dict(
        paths["database"].query(
            f"select run_id, ARRAY[start_time, end_time] from runs where run_id in ('{first}', '{second}')"
        )
    )
    (a_start, a_end), (b_start, b_end) = sorted(times.values())
    assert a_end <= b_start, times
    tags = paths["database"].query(
        f"select key from run_tags where key = 'kuhr/process' and run_id in ('{first}', '{second}')"
    )
    assert len(tags) == 2
    staged = paths["home"] / "staging" / APP
    assert not staged.exists() or [p for p in staged.rglob("*") if p.is_file()] == []


def test_applications_overview_and_a_failed_run_read_plainly(dagster) -> None:
    """The sensor records the applications overview (a withdrawn spec with its reason); a run that
    fails its blocking check ends with the check's sentence, not Dagster's check error; both pages
    are kept as screenshots in test-artifacts/."""
    server, paths = dagster
    write_spec(paths["apps"], {"application_id": "UI-0002", "cohort.entry.diagnoses": ["Q99"]}, name="empty.yaml")
    write_spec(paths["apps"], {"application_id": "UI-0003", "approval.status": "withdrawn"}, name="UI-0003.yaml")
    deadline, failed = time.monotonic() + 300, None
    while failed is None and time.monotonic() < deadline:
        runs = server.runs("UI-0002")
        failed = next((r["runId"] for r in runs if r["status"] == "FAILURE"), None)
        time.sleep(2)
    assert failed, server.runs("UI-0002")
    events = server.graphql(
        """query Events($runId: ID!) { logsForRun(runId: $runId) { ... on EventConnection { events {
             __typename ... on ExecutionStepFailureEvent { stepKey error { message className stack } }
             ... on RunFailureEvent { error { message stack } } } } } }""",
        {"runId": failed},
    )["logsForRun"]["events"]
    (step_failure,) = [e for e in events if e["__typename"] == "ExecutionStepFailureEvent"]
    assert step_failure["error"]["className"] == "Failure" and step_failure["error"]["stack"] == []
    assert step_failure["error"]["message"].startswith("UI-0002: check cohort_is_not_empty failed: the cohort is empty")
    (run_failure,) = [e for e in events if e["__typename"] == "RunFailureEvent"]
    assert run_failure["error"] == {"message": step_failure["error"]["message"], "stack": []}

    rows = _overview_rows(
        server, lambda rows: "UI-0003" in rows and rows.get("UI-0002", {}).get("last_run") == "failure"
    )
    assert rows["UI-0003"]["status"] == "withdrawn" and "approval.status" in rows["UI-0003"]["why"]
    assert rows["UI-0002"]["file"] == "empty.yaml" and rows["UI-0002"]["last_delivery"] == "never"
    assert rows["UI-0002"]["last_run"] == "failure"  # a failed run shows as failed
    assert "by dagster-service since" in rows[APP]["pending_release"]  # the earlier tests' prepared packages

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is installed by .ci/run (apt-get install chromium)"
    flags = browser_flags(paths["root"])
    ARTIFACTS.mkdir(exist_ok=True)
    for name, page in (
        ("applications-overview.png", f"{server.url}/assets/applications_overview"),
        ("failed-run.png", f"{server.url}/runs/{failed}"),
    ):
        (ARTIFACTS / name).unlink(missing_ok=True)
        taken = subprocess.run(
            [chromium, *flags, f"--screenshot={ARTIFACTS / name}", page], capture_output=True, timeout=120
        )
        assert taken.returncode == 0 and (ARTIFACTS / name).stat().st_size > 10_000, taken.stderr[-2000:]
    run_page = subprocess.run(
        [chromium, *flags, "--dump-dom", f"{server.url}/runs/{failed}"], capture_output=True, text=True, timeout=120
    ).stdout
    assert "the cohort is empty" in run_page and "DagsterAssetCheckFailedError" not in run_page
    assert "execute_plan.py" not in run_page and "failures.py" not in run_page  # no stack trace on the page

    # a reviewer releases every pending package: the overview shows no pending release, the last one released
    for pending in _pending(paths):
        released_cli = _cli(paths, "release", pending, "--key", paths["keys"] / "anna.key")
        assert released_cli.returncode == 0, released_cli.stderr
    rows = _overview_rows(server, lambda rows: rows.get(APP, {}).get("pending_release") == "")
    assert rows[APP]["last_delivery"].endswith(", released)")
    page = subprocess.run(
        [chromium, *flags, "--dump-dom", f"{server.url}/assets/applications_overview"],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    (ARTIFACTS / "released-overview.png").unlink(missing_ok=True)
    subprocess.run(
        [
            chromium,
            *flags,
            f"--screenshot={ARTIFACTS / 'released-overview.png'}",
            f"{server.url}/assets/applications_overview",
        ],
        capture_output=True,
        timeout=120,
    )
    assert "released)" in page, page[-3000:]


def _overview_rows(server: Dagster, ready, timeout: float = 180.0) -> dict[str, dict]:
    """The newest applications overview the sensor recorded, once `ready(rows)` holds."""
    deadline = time.monotonic() + timeout
    rows: dict[str, dict] = {}
    while time.monotonic() < deadline:
        overview = server.graphql(
            """{ assetOrError(assetKey: {path: ["applications_overview"]}) { ... on Asset {
                 assetMaterializations(limit: 1) { metadataEntries { label ... on TableMetadataEntry {
                   table { records } } } } } } }"""
        )["assetOrError"]["assetMaterializations"]
        if overview:
            (table,) = [e for e in overview[0]["metadataEntries"] if e["label"] == "applications"]
            rows = {row["application_id"]: row for row in map(json.loads, table["table"]["records"])}
            if ready(rows):
                return rows
        time.sleep(3)
    raise AssertionError(f"the overview did not show it within {timeout} s: {rows}")


def browser_flags(root: Path) -> list[str]:
    return [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={root / 'chromium'}",
        "--window-size=1600,1000",
        "--virtual-time-budget=20000",
    ]


def test_asset_graph_page_in_headless_chromium(dagster) -> None:
    server, paths = dagster
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is installed by .ci/run (apt-get install chromium)"
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "asset-graph.png"
    flags = browser_flags(paths["root"])
    group = f"{server.url}/locations/kuhr_pipeline/asset-groups"
    page = f"{group}/delivery"
    # only the group's asset graph draws asset nodes, one per asset of the group; pages that are
    # not that graph (a group that does not exist, the runs list) draw none
    assert rendered_asset_nodes(chromium, flags, page) == ["application", "cohort", "delivery", "extract", "statistics"]
    for other in (f"{group}/nosuchgroup", f"{server.url}/runs"):
        assert rendered_asset_nodes(chromium, flags, other) == [], other
    screenshot.unlink(missing_ok=True)
    taken = subprocess.run([chromium, *flags, f"--screenshot={screenshot}", page], capture_output=True, timeout=120)
    assert taken.returncode == 0, taken.stderr[-2000:]
    assert screenshot.exists() and screenshot.stat().st_size > 10_000
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def rendered_asset_nodes(chromium: str, flags: list[str], page: str) -> list[str]:
    """The names of the asset nodes the page renders (the graph's node boxes and their names)."""
    dumped = subprocess.run([chromium, *flags, "--dump-dom", page], capture_output=True, text=True, timeout=120)
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    boxes = dumped.stdout.split('class="AssetNode_assetNodeBox')[1:]
    names = [re.search(r'data-tooltip="([^"]+)"', box) for box in boxes]
    return sorted(name.group(1) for name in names if name)
