"""The real Dagster daemon runs the promotion sensors for a few ticks: gate, then approval."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from conftest import QUIET, REPO_ROOT, write_manifest
from test_sensors import LENIENT, QUESTIONS, register_candidate


def _wait_for(condition, timeout: float, what: str, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(2)
    raise AssertionError(f"timed out waiting for {what}; daemon log:\n"
                         f"{log.read_text()[-4000:]}")


@pytest.mark.usefixtures("home")
def test_daemon_ticks_gate_and_approval_sensors(manifests, tmp_path, monkeypatch):
    write_manifest(manifests, "std", source={"kind": "stdlib_docstrings",
                                             "modules": ["textwrap", "shlex"]})
    evalset = tmp_path / "eval.jsonl"
    evalset.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    policy = tmp_path / "slos.yaml"
    policy.write_text(LENIENT)
    monkeypatch.setenv("PLIMSOLL_POLICY", str(policy))
    monkeypatch.setenv("PLIMSOLL_ACTOR", "trainer-tess")
    from platform_defs.definitions import defs

    definitions = defs()
    with dg.DagsterInstance.get() as instance:  # the instance under DAGSTER_HOME
        for name in ("faq", "notes", "std"):
            definitions.resolve_job_def("dataset_slices_job").execute_in_process(
                partition_key=name, instance=instance, run_config=QUIET)
        definitions.resolve_job_def("embeddings_index_job").execute_in_process(
            instance=instance, run_config=QUIET)
        version = register_candidate(definitions, instance, evalset, seed=1)

    promoter = definitions.resources["promotion"].promoter(definitions.resources["mlflow"])
    log = tmp_path / "daemon.log"
    with log.open("w") as out:
        daemon = subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w",
             str(REPO_ROOT / "workspace.yaml")],
            cwd=REPO_ROOT, env=dict(os.environ), stdout=out, stderr=subprocess.STDOUT)
        try:
            _wait_for(lambda: promoter.alias("challenger") == version, 150,
                      "the gate sensor to make the candidate challenger", log)
            promoter.registry.set_tag(promoter.model, version, "approval", "approved")
            promoter.registry.set_tag(promoter.model, version, "approval.by", "reviewer-rita")
            _wait_for(lambda: promoter.alias("champion") == version, 150,
                      "the approval sensor to promote it", log)
        finally:
            daemon.terminate()
            daemon.wait(timeout=30)
    entries = promoter.ledger.entries()
    assert [(e.action, e.to_version, e.actor) for e in entries] == [
        ("promote", version, "reviewer-rita")]
    assert promoter.registry.client.get_model_version(promoter.model, version).tags[
        "promotion.state"] == "promoted"
