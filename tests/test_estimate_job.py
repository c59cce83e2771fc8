"""The estimate from the UI: job `estimate_application` for a draft spec, which never delivers."""

from __future__ import annotations

import json

import dagster as dg

from kuhr_pipeline.defs import build_definitions
from kuhr_pipeline.defs.resources import KuhrPaths, default_resources
from tests.helpers import small_application, write_spec


def test_the_estimate_job_counts_a_draft_and_delivers_nothing(tmp_path, keys_env) -> None:
    source, spec = small_application(tmp_path, "DRAFT-1")
    draft = write_spec(spec.parent, {"application_id": "DRAFT-1", "approval.status": "draft"}, name="DRAFT-1.yaml")
    paths = KuhrPaths(applications=str(spec.parent), source=str(source), deliveries=str(keys_env["deliveries"]))
    job = build_definitions({**default_resources(), "paths": paths}).resolve_job_def("estimate_application")
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(
            instance=instance, run_config={"ops": {"estimate_cohort": {"config": {"spec_path": str(draft)}}}}
        )
    assert result.success
    (output,) = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = output.event_specific_data.metadata
    assert metadata["application_id"].value == "DRAFT-1" and metadata["draft"].value is True
    steps = [record.data["step"] for record in metadata["attrition"].value.records]
    assert steps[0] == "persons with a claim in the period"
    assert not (keys_env["deliveries"] / "DRAFT-1").exists()
    (line,) = [json.loads(x) for x in (keys_env["deliveries"] / "audit.jsonl").read_text().splitlines()]
    assert line["event"] == "estimate" and line["application_id"] == "DRAFT-1"
