"""Promote → approve → rollback through the Dagster sensors and job, on the embedded stores."""

import json

import dagster as dg
import pytest
from conftest import QUIET, write_manifest

QUESTIONS = [
    {"qid": "t1", "question": "How do I go back to the previous model version?",
     "answerable": True, "gold_doc_ids": ["doc-0"], "answer_hint": ""},
    {"qid": "t2", "question": "How can I remove the common indentation of a block of text?",
     "answerable": True, "gold_doc_ids": ["stdlib:textwrap.dedent"], "answer_hint": ""},
    {"qid": "t3", "question": "What is a good recipe for banana bread?",
     "answerable": False, "gold_doc_ids": [], "answer_hint": ""},
]
LENIENT = """version: 1
model: plimsoll-docs-assistant
minimum: {recall@5: 0.1}
maximum: {latency_p95_ms: 5000.0}
max_regression: {recall@5: 0.5}
allow_unmeasured: [critical_violations, soft_violation_rate]
"""


# The embedded run of these flows is nightly (slow): CI runs the production shape, and the
# embedded stores are driven through the same sensors by tests/test_daemon.py (a real daemon)
# and tests/test_promotion.py, and through rollback by tests/test_gateway.py.
@pytest.fixture(params=[pytest.param("embedded", marks=pytest.mark.slow), "postgres"])
def setup_kind(request):
    """embedded: SQLite everywhere. postgres: `mlflow server` on PostgreSQL, Dagster storage,
    ledger and eval registry on PostgreSQL — the production shape."""
    if request.param == "embedded":
        return {}
    make_db = request.getfixturevalue("make_postgres_db")
    return {"dagster_url": make_db(), "platform_url": make_db(),
            "mlflow_url": request.getfixturevalue("mlflow_server")}


@pytest.fixture
def world(home, manifests, tmp_path, monkeypatch, setup_kind):  # noqa: ARG001 (home: isolated)
    write_manifest(manifests, "std", source={"kind": "stdlib_docstrings",
                                             "modules": ["textwrap", "shlex"]})
    evalset = tmp_path / "eval.jsonl"
    evalset.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    policy = tmp_path / "slos.yaml"
    policy.write_text(LENIENT + f"nightly: {{evalset: {evalset}}}\n")
    monkeypatch.setenv("PLIMSOLL_POLICY", str(policy))
    monkeypatch.setenv("PLIMSOLL_ACTOR", "trainer-tess")
    overrides = None
    if setup_kind:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", setup_kind["mlflow_url"])
        monkeypatch.setenv("PLIMSOLL_LEDGER_URL", setup_kind["platform_url"])
        monkeypatch.setenv("PLIMSOLL_EVAL_REGISTRY_URL", setup_kind["platform_url"])
        overrides = {"storage": {"postgres": {"postgres_url": setup_kind["dagster_url"]}}}
    from platform_defs.definitions import defs

    definitions = defs()
    with dg.instance_for_test(overrides=overrides) as instance:
        for name in ("faq", "notes", "std"):
            definitions.resolve_job_def("dataset_slices_job").execute_in_process(
                partition_key=name, instance=instance, run_config=QUIET)
        definitions.resolve_job_def("embeddings_index_job").execute_in_process(
            instance=instance, run_config=QUIET)
        yield definitions, instance, evalset


def register_candidate(definitions, instance, evalset, seed):
    result = definitions.resolve_job_def("candidate_job").execute_in_process(
        instance=instance, run_config={**QUIET, "ops": {
            "training_pairs": {"config": {"training_slices": ["std"]}},
            "finetuned_encoder": {"config": {"batch_size": 4, "frozen_layers": 5,
                                             "seed": seed, "epochs": 1,
                                             "dev_evalset": "none"}},
            "eval_report": {"config": {"evalset": str(evalset), "dev_evalset": "none"}}}})
    (materialization,) = result.asset_materializations_for_node("candidate_model")
    return str(materialization.metadata["version"].value)


def tick(definitions, instance, name, cursor=None):
    sensor = definitions.resolve_sensor_def(name)
    with dg.build_sensor_context(instance=instance, cursor=cursor,
                                 resources=definitions.resources) as context:
        return sensor(context)


def test_gate_approve_promote_and_rollback(world, capsys):
    from plimsoll.cli.main import main

    definitions, instance, evalset = world
    promoter = definitions.resources["promotion"].promoter(definitions.resources["mlflow"])
    first = register_candidate(definitions, instance, evalset, seed=1)

    gate = tick(definitions, instance, "promotion_gate_sensor")
    (observation,) = gate.asset_events
    assert observation.metadata["gate_verdict"].value == "pass"
    assert "| minimum | recall@5 |" in observation.metadata["gates"].value
    assert promoter.alias("challenger") == first
    again = tick(definitions, instance, "promotion_gate_sensor", cursor=gate.cursor)
    assert again.skip_reason is not None  # cursor: the same candidate is not gated twice

    assert main(["review", first, "approved", "--by", "reviewer-rita"]) == 0
    approval = tick(definitions, instance, "approval_sensor")
    assert approval.asset_events[0].metadata["promotion"].value == "promoted"
    assert promoter.alias("champion") == first
    assert tick(definitions, instance, "approval_sensor").skip_reason is not None

    second = register_candidate(definitions, instance, evalset, seed=2)
    tick(definitions, instance, "promotion_gate_sensor", cursor=gate.cursor)
    assert main(["review", second, "approved", "--by", "trainer-tess"]) == 0  # self-approval
    refused = tick(definitions, instance, "approval_sensor")
    assert refused.asset_events[0].metadata["promotion"].value == "refused"
    assert "self-approval" in refused.asset_events[0].metadata["reason"].value
    assert promoter.alias("champion") == first

    third = register_candidate(definitions, instance, evalset, seed=3)
    tick(definitions, instance, "promotion_gate_sensor", cursor=gate.cursor)
    main(["review", third, "approved", "--by", "reviewer-rita"])
    tick(definitions, instance, "approval_sensor")
    assert promoter.alias("champion") == third

    rolled = definitions.resolve_job_def("rollback_job").execute_in_process(
        instance=instance, run_config={**QUIET, "ops": {"rollback_champion": {"config": {
            "reason": "p95 regression"}}}})
    assert rolled.success
    assert promoter.alias("champion") == first and promoter.alias("previous-champion") == third
    actions = [(e.action, e.from_version, e.to_version) for e in promoter.ledger.entries()]
    assert actions == [("promote", None, first), ("promote", first, third),
                       ("rollback", third, first)]

    assert main(["rollback"]) == 2  # first was the first champion: nothing to go back to
    assert promoter.alias("champion") == first
    # The CLI's fast path (REST for the server, SQL for the embedded store), read back by MLflow.
    assert main(["rollback", "--to", third, "--reason", "on-call test"]) == 0
    assert promoter.alias("champion") == third and promoter.alias("previous-champion") == first
    assert promoter.ledger.entries()[-1].reason == "on-call test"
    capsys.readouterr()
    assert main(["status"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.split()[0] == third and "champion" in line for line in lines[1:])


def test_nightly_eval_flags_regressions_as_a_failed_check(world):
    from plimsoll.evaluation.eval_registry import EvalRegistry

    definitions, instance, evalset = world
    schedule = definitions.resolve_schedule_def("nightly_eval_schedule")
    assert schedule.cron_schedule == "0 2 * * *" and schedule.execution_timezone == "UTC"

    promoter = definitions.resources["promotion"].promoter(definitions.resources["mlflow"])
    version = register_candidate(definitions, instance, evalset, seed=1)
    tick(definitions, instance, "promotion_gate_sensor")
    promoter.registry.set_tag(promoter.model, version, "approval", "approved")
    promoter.registry.set_tag(promoter.model, version, "approval.by", "reviewer-rita")
    tick(definitions, instance, "approval_sensor")
    assert promoter.alias("champion") == version

    job = definitions.resolve_job_def("nightly_eval_job")
    first = job.execute_in_process(instance=instance, run_config=QUIET)
    (check,) = first.get_asset_check_evaluations()
    assert check.passed  # first night: the baseline
    scores = first.asset_materializations_for_node("nightly_eval")[0].metadata["scores"].value
    assert 0 <= scores["champion"]["recall@5"] <= 1

    # Last night answered in 1 µs at p95 and the policy allows +1 ms: tonight regressed.
    policy_file = promoter.policy.path
    policy_file.write_text(policy_file.read_text().replace(
        "max_regression: {recall@5: 0.5}", "max_regression: {recall@5: 0.5, latency_p95_ms: 1.0}"))
    registry = EvalRegistry(definitions.resources["eval_registry"].url)
    rows = [r for r in registry.results(f"models:/{promoter.model}/{version}")
            if r["system"] == "nightly"]
    nightly_hash = rows[-1]["eval_set_hash"]
    registry.record(commit_sha="earlier", model_ref=f"models:/{promoter.model}/{version}",
                    eval_set_hash=nightly_hash, seed=42, system="nightly",
                    metrics={**rows[-1]["metrics"], "latency_p95_ms": 0.001})
    second = job.execute_in_process(instance=instance, run_config=QUIET, raise_on_error=False)
    (check,) = second.get_asset_check_evaluations()
    assert not check.passed
    (regression,) = check.metadata["regressions"].value
    assert regression["metric"] == "latency_p95_ms" and regression["old"] == 0.001
    assert regression["new"] > 1.001 and regression["against"] == "last night"
    assert "ALERT" in check.description


@pytest.mark.usefixtures("home")
def test_the_approval_sensor_keeps_no_cursor_and_survives_restarts(bundle):
    """MLflow's tags record what was decided: a stale, lost or foreign cursor changes nothing.

    A reviewer's correction (here, naming themselves after approving) is a tag write, which
    moves no MLflow timestamp, so only re-reading the tags each tick can see it.
    """
    import time

    from platform_defs.definitions import defs
    from plimsoll.release.registry import lineage_tags
    from plimsoll.serving.pyfunc import pyfunc_model

    definitions = defs()
    promoter = definitions.resources["promotion"].promoter(definitions.resources["mlflow"])
    registry = promoter.registry
    scores = {"recall@5": 0.93, "mrr": 0.80, "grounding_rate": 0.83,
              "abstention_accuracy": 0.92, "latency_p95_ms": 12.0, "cost_per_request": 0.00001,
              "critical_violations": 0, "soft_violation_rate": 0.0}
    run = registry.client.create_run(registry.ensure_reachable())
    version = registry.register(promoter.model, bundle, lineage_tags({
        "eval_scores": scores, "trained_by": "trainer-tess",
        "bundle_key": f"{time.time_ns()}"}), run.info.run_id, pyfunc_model())
    assert promoter.gate(version)[0].passed

    with dg.instance_for_test() as instance:
        idle = tick(definitions, instance, "approval_sensor", cursor='{"ledger_entries": 3}')
        assert idle.skip_reason is not None and idle.cursor is None

        promoter.registry.set_tag(promoter.model, version, "approval", "approved")
        unsigned = tick(definitions, instance, "approval_sensor")
        assert unsigned.asset_events[0].metadata["promotion"].value == "invalid"
        assert unsigned.cursor is None

        promoter.registry.set_tag(promoter.model, version, "approval.by", "reviewer-rita")
        promoted = tick(definitions, instance, "approval_sensor", cursor='{"ledger_entries": 9}')
        assert promoted.asset_events[0].metadata["promotion"].value == "promoted"
        assert promoted.cursor is None
        assert promoter.alias("champion") == version

        for cursor in (None, '{"ledger_entries": 0}', "not json"):  # a restart, any cursor
            assert tick(definitions, instance, "approval_sensor",
                        cursor=cursor).skip_reason is not None
    assert [(e.action, e.to_version) for e in promoter.ledger.entries()] == [
        ("promote", version)]
