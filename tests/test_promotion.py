import json
import time

import pytest
from conftest import REPO_ROOT

from plimsoll.release.ledger import PromotionLedger
from plimsoll.release.lineage_record import LineageRecords
from plimsoll.release.policy import PolicyError, load_policy
from plimsoll.release.promotion import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS,
    MoveInProgress,
    Promoter,
    PromotionError,
)
from plimsoll.release.registry import LINEAGE_PREFIX, ModelRegistry, RegistryError, lineage_tags
from plimsoll.serving.pyfunc import pyfunc_model

GOOD = {"recall@5": 0.93, "mrr": 0.80, "grounding_rate": 0.83, "abstention_accuracy": 0.92,
        "latency_p95_ms": 12.0, "cost_per_request": 0.00001, "critical_violations": 0,
        "soft_violation_rate": 0.0}


@pytest.fixture
def promoter(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    ledger = PromotionLedger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    registry = ModelRegistry(uri, artifact_root=str(tmp_path / "artifacts"),
                             records=LineageRecords(ledger.url))
    policy = load_policy(REPO_ROOT / "policies" / "slos.yaml")
    return Promoter(registry, ledger, policy)


def candidate(promoter, bundle, trained_by="alice", **scores):
    registry = promoter.registry
    run = registry.client.create_run(registry.ensure_reachable())
    lineage = lineage_tags({"eval_scores": {**GOOD, **scores}, "trained_by": trained_by,
                            "bundle_key": f"{time.time_ns()}"})
    return registry.register(promoter.model, bundle, lineage, run.info.run_id, pyfunc_model())


def approve(promoter, version, by="bob", value="approved"):
    client = promoter.registry.client
    client.set_model_version_tag(promoter.model, version, "approval", value)
    client.set_model_version_tag(promoter.model, version, "approval.by", by)


def tags(promoter, version):
    return promoter.registry.client.get_model_version(promoter.model, version).tags


def test_gate_pass_makes_a_challenger_pending_approval(promoter, bundle):
    version = candidate(promoter, bundle)
    verdict, fresh = promoter.gate(version)
    assert verdict.passed and fresh
    assert promoter.alias(CHALLENGER) == version
    assert tags(promoter, version)["approval"] == "pending"
    assert tags(promoter, version)["gate.verdict"] == "pass"
    reasons = json.loads(tags(promoter, version)["gate.reasons"])
    assert any(r.startswith("PASS minimum recall@5: 0.93 vs 0.85") for r in reasons)
    assert any(r.startswith("PASS safety critical_violations: 0 vs 0") for r in reasons)
    assert promoter.gate(version)[1] is False  # a repeated tick does nothing new


def test_gate_fail_sets_nothing_else(promoter, bundle):
    version = candidate(promoter, bundle, **{"recall@5": 0.5})
    verdict, _ = promoter.gate(version)
    assert not verdict.passed
    assert verdict.reasons[0] == "FAIL minimum recall@5: 0.5 vs 0.85"
    assert promoter.alias(CHALLENGER) is None
    assert "approval" not in tags(promoter, version)


def test_a_red_team_attack_that_got_through_fails_the_safety_gate(promoter, bundle):
    version = candidate(promoter, bundle, critical_violations=1)
    verdict, _fresh = promoter.gate(version)
    assert not verdict.passed
    reasons = json.loads(tags(promoter, version)["gate.reasons"])
    assert any(r.startswith("FAIL safety critical_violations: 1 vs 0") for r in reasons)
    assert promoter.alias(CHALLENGER) is None


def test_approval_promotes_keeps_previous_and_writes_the_ledger(promoter, bundle):
    first, second = candidate(promoter, bundle), candidate(promoter, bundle)
    for version in (first, second):
        promoter.gate(version)
    approve(promoter, first)
    assert [o.action for o in promoter.process_approvals()] == ["promoted"]
    approve(promoter, second)
    assert [o.action for o in promoter.process_approvals()] == ["promoted"]
    assert promoter.alias(CHAMPION) == second and promoter.alias(PREVIOUS) == first
    assert promoter.process_approvals() == []  # a repeated tick never promotes twice
    entries = promoter.ledger.entries()
    assert [(e.from_version, e.to_version, e.action, e.actor) for e in entries] == [
        (None, first, "promote", "bob"), (first, second, "promote", "bob")]


def test_two_approvals_in_one_tick_leave_one_champion_and_two_rows(promoter, bundle):
    first, second = candidate(promoter, bundle), candidate(promoter, bundle)
    for version in (first, second):
        promoter.gate(version)
        approve(promoter, version)
    assert [o.version for o in promoter.process_approvals()] == [first, second]
    assert promoter.alias(CHAMPION) == second
    assert [e.to_version for e in promoter.ledger.entries()] == [first, second]


def test_approving_a_version_that_failed_its_gate_is_refused(promoter, bundle):
    version = candidate(promoter, bundle, mrr=0.1)
    promoter.gate(version)
    approve(promoter, version)
    (outcome,) = promoter.process_approvals()
    assert outcome.action == "refused" and "gate verdict is 'fail'" in outcome.reason
    assert promoter.alias(CHAMPION) is None
    assert tags(promoter, version)["promotion.state"] == "refused"
    assert promoter.ledger.entries() == []


def test_approving_a_tampered_version_is_refused(promoter, bundle):
    version = candidate(promoter, bundle)
    promoter.gate(version)
    promoter.registry.client.set_model_version_tag(promoter.model, version,
                                          LINEAGE_PREFIX + "trained_by", "mallory")
    approve(promoter, version)
    (outcome,) = promoter.process_approvals()
    assert outcome.action == "refused" and "a tag was edited" in outcome.reason
    assert promoter.alias(CHAMPION) is None


def test_unknown_approval_value_is_flagged_and_ignored(promoter, bundle):
    version = candidate(promoter, bundle)
    promoter.gate(version)
    approve(promoter, version, value="lgtm")
    (outcome,) = promoter.process_approvals()
    assert outcome.action == "invalid"
    assert "set approval to 'approved' or 'rejected'" in tags(promoter, version)[
        "approval.error"]
    assert promoter.process_approvals() == [] and promoter.alias(CHAMPION) is None


def test_self_approval_is_refused(promoter, bundle):
    version = candidate(promoter, bundle, trained_by="alice")
    promoter.gate(version)
    approve(promoter, version, by="alice")
    (outcome,) = promoter.process_approvals()
    assert outcome.action == "refused" and "self-approval" in outcome.reason


def test_rejection_is_a_ledger_entry_and_drops_the_challenger(promoter, bundle):
    version = candidate(promoter, bundle)
    promoter.gate(version)
    approve(promoter, version, value="rejected")
    assert promoter.process_approvals()[0].action == "rejected"
    assert promoter.alias(CHALLENGER) is None and promoter.alias(CHAMPION) is None
    assert promoter.ledger.entries()[0].action == "reject"


def test_store_down_during_promotion_moves_nothing_half_way(promoter, bundle, monkeypatch):
    first, second = candidate(promoter, bundle), candidate(promoter, bundle)
    for version in (first, second):
        promoter.gate(version)
    approve(promoter, first)
    promoter.process_approvals()
    approve(promoter, second)
    real = promoter.registry.client.set_registered_model_alias

    def flaky(name, alias, version):
        if alias == CHAMPION:
            raise ConnectionError("MLflow server stopped")
        return real(name, alias, version)

    monkeypatch.setattr(promoter.registry.client, "set_registered_model_alias", flaky)
    with pytest.raises(RegistryError, match="MLflow server stopped"):
        promoter.process_approvals()
    assert promoter.alias(CHAMPION) == first  # champion did not move
    assert len(promoter.ledger.entries()) == 1
    monkeypatch.undo()
    assert [o.action for o in promoter.process_approvals()] == ["promoted"]  # next tick
    assert promoter.alias(CHAMPION) == second and promoter.alias(PREVIOUS) == first
    assert [e.to_version for e in promoter.ledger.entries()] == [first, second]


def test_rollback_moves_champion_back_along_the_ledger(promoter, bundle):
    first, second = candidate(promoter, bundle), candidate(promoter, bundle)
    for version in (first, second):
        promoter.gate(version)
        approve(promoter, version)
        promoter.process_approvals()
    entry = promoter.rollback(actor="oncall", reason="p95 regression")
    assert promoter.alias(CHAMPION) == first and promoter.alias(PREVIOUS) == second
    assert (entry.action, entry.from_version, entry.to_version, entry.actor) == (
        "rollback", second, first, "oncall")
    with pytest.raises(PromotionError, match="no previous champion"):
        promoter.rollback()  # first was the first champion
    assert promoter.alias(CHAMPION) == first
    promoter.rollback(to_version=second, actor="oncall")
    assert promoter.alias(CHAMPION) == second


def test_rollback_without_previous_champion_changes_nothing(promoter, bundle):
    with pytest.raises(PromotionError, match="has no champion"):
        promoter.rollback()
    version = candidate(promoter, bundle)
    promoter.gate(version)
    approve(promoter, version)
    promoter.process_approvals()
    with pytest.raises(PromotionError, match="no previous champion") as caught:
        promoter.rollback()
    assert "nothing changed" in caught.value.fix
    assert promoter.alias(CHAMPION) == version and len(promoter.ledger.entries()) == 1


def test_ledger_is_append_only_in_the_database(tmp_path):
    import sqlalchemy as sa

    ledger = PromotionLedger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    ledger.append(model="m", from_version=None, to_version="1", action="promote", actor="a",
                  reason="r", lineage_digest="d")
    with pytest.raises(sa.exc.DatabaseError, match="append-only"), \
            ledger._engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM promotion_ledger"))
    assert len(ledger.entries()) == 1


@pytest.mark.parametrize(("edit", "field"), [
    ({"minimum": {"recall@50": 0.9}}, "minimum.recall@50"),
    ({"minimum": {"recall@5": "high"}}, "minimum.recall@5"),
    ({"safety": {"critical_violations": 0.5}}, "safety.critical_violations"),
    ({"colour": "blue"}, "colour"),
])
def test_invalid_policy_fails_with_the_field(tmp_path, edit, field):
    import yaml

    policy = yaml.safe_load((REPO_ROOT / "policies" / "slos.yaml").read_text())
    for key, value in edit.items():
        policy[key] = {**policy[key], **value} if isinstance(policy.get(key), dict) else value
    path = tmp_path / "slos.yaml"
    path.write_text(yaml.safe_dump(policy))
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert caught.value.field.startswith(field.split(".")[0])
    assert caught.value.file == str(path) and caught.value.fix


def test_an_approval_without_a_reviewer_waits_for_one(promoter, bundle):
    version = candidate(promoter, bundle)
    promoter.gate(version)
    promoter.registry.client.set_model_version_tag(promoter.model, version, "approval", "approved")
    (outcome,) = promoter.process_approvals()
    assert outcome.action == "invalid" and "names no reviewer" in outcome.reason
    assert promoter.alias(CHAMPION) is None and promoter.ledger.entries() == []
    promoter.registry.client.set_model_version_tag(promoter.model, version, "approval.by", "bob")
    assert [o.action for o in promoter.process_approvals()] == ["promoted"]
    assert promoter.ledger.entries()[0].actor == "bob"


@pytest.mark.parametrize("spelling", ["Alice ", "ALICE", " alice\u200b", "\uff41lice",
                                      "alice\t"])
def test_self_approval_is_refused_however_the_name_is_written(promoter, bundle, spelling):
    version = candidate(promoter, bundle, trained_by="alice")
    promoter.gate(version)
    approve(promoter, version, by=spelling)
    (outcome,) = promoter.process_approvals()
    assert outcome.action == "refused" and "self-approval" in outcome.reason
    assert promoter.alias(CHAMPION) is None


def test_the_training_runs_user_is_a_trainer_too(promoter, bundle):
    registry = promoter.registry
    run = registry.client.create_run(registry.ensure_reachable(), tags={"mlflow.user": "tess"})
    lineage = lineage_tags({"eval_scores": GOOD, "trained_by": "alice",
                            "bundle_key": f"{time.time_ns()}"})
    version = registry.register(promoter.model, bundle, lineage, run.info.run_id,
                                pyfunc_model())
    promoter.gate(version)
    approve(promoter, version, by="Tess")  # who ran the training run in MLflow
    (outcome,) = promoter.process_approvals()
    assert outcome.action == "refused" and "self-approval" in outcome.reason


def test_a_forged_trainer_with_a_recomputed_digest_is_refused(promoter, bundle):
    from plimsoll.release.registry import DIGEST_TAG, lineage_digest

    version = candidate(promoter, bundle, trained_by="alice")
    promoter.gate(version)
    forged = dict(tags(promoter, version))
    forged[LINEAGE_PREFIX + "trained_by"] = "mallory"
    promoter.registry.client.set_model_version_tag(promoter.model, version,
                                          LINEAGE_PREFIX + "trained_by", "mallory")
    promoter.registry.client.set_model_version_tag(promoter.model, version, DIGEST_TAG,
                                          lineage_digest(forged))
    verification = promoter.registry.verify(promoter.model, version)
    assert not verification.ok
    assert any("trained_by was edited" in p for p in verification.problems)
    approve(promoter, version, by="alice")  # the real trainer, hoping the forgery hides it
    (outcome,) = promoter.process_approvals()
    assert outcome.action == "refused" and "self-approval" in outcome.reason
    assert "trained_by was edited" in outcome.reason and promoter.alias(CHAMPION) is None


def test_only_the_policys_approvers_may_approve(promoter, bundle):
    from plimsoll.release.policy import Approval

    promoter.policy = promoter.policy.model_copy(update={"approval": Approval(
        approvers=["Rita Reviewer"])})
    version = candidate(promoter, bundle)
    promoter.gate(version)
    approve(promoter, version, by="bob")
    (outcome,) = promoter.process_approvals()
    assert outcome.action == "refused" and "not an approver" in outcome.reason
    other = candidate(promoter, bundle)
    promoter.gate(other)
    approve(promoter, other, by="  rita   reviewer ")
    assert [o.action for o in promoter.process_approvals()] == ["promoted"]


def test_the_gate_is_rerun_against_the_champion_of_approval_time(promoter, bundle):
    weak = candidate(promoter, bundle, mrr=0.70)
    promoter.gate(weak)  # passes: no champion yet
    strong = candidate(promoter, bundle, mrr=0.90)
    promoter.gate(strong)
    approve(promoter, strong)
    assert [o.action for o in promoter.process_approvals()] == ["promoted"]
    approve(promoter, weak)  # approved later, against a champion it now regresses from
    (outcome,) = promoter.process_approvals()
    assert outcome.action == "refused" and "against the current champion" in outcome.reason
    assert "regression mrr" in outcome.reason and promoter.alias(CHAMPION) == strong


def test_a_registration_whose_record_cannot_be_written_leaves_no_version(promoter, bundle,
                                                                         monkeypatch):
    from plimsoll.release.lineage_record import LineageRecordError

    def refuse(*_args, **_kwargs):
        raise LineageRecordError("the lineage record store is read-only")

    monkeypatch.setattr(promoter.records, "record", refuse)
    with pytest.raises(LineageRecordError):
        candidate(promoter, bundle)
    versions = promoter.registry.client.search_model_versions(f"name = '{promoter.model}'")
    assert versions == []


def test_two_approval_ticks_at_once_promote_once(promoter, bundle):
    import threading

    version = candidate(promoter, bundle)
    promoter.gate(version)
    approve(promoter, version)
    other = Promoter(promoter.registry, PromotionLedger(promoter.ledger.url), promoter.policy,
                     records=promoter.records)
    barrier, outcomes = threading.Barrier(2), []

    def tick(worker):
        barrier.wait()
        try:
            outcomes.append([o.action for o in worker.process_approvals()])
        except MoveInProgress:  # the other tick is mid-move: this one skips (as the sensor)
            outcomes.append(["skipped"])

    threads = [threading.Thread(target=tick, args=(w,)) for w in (promoter, other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(outcomes)[-1] == ["promoted"] and len(outcomes) == 2
    assert [(e.to_version, e.action) for e in promoter.ledger.entries()] == [
        (version, "promote")]
    assert promoter.ledger.open_intents(promoter.model) == []
    assert promoter.alias(CHAMPION) == version


def test_rollback_to_a_deleted_version_says_so_and_changes_nothing(promoter, bundle):
    first, second = candidate(promoter, bundle), candidate(promoter, bundle)
    for version in (first, second):
        promoter.gate(version)
        approve(promoter, version)
        promoter.process_approvals()
    promoter.registry.client.delete_model_version(promoter.model, first)
    rows = promoter.ledger.rows(promoter.model)
    for target in (None, first):  # back along the ledger, and named
        with pytest.raises(RegistryError, match=f"version {first} is not registered "
                           r"\(or was deleted\)") as caught:
            promoter.rollback(to_version=target, actor="oncall")
        assert "nothing was changed" in caught.value.fix
        assert promoter.alias(CHAMPION) == second
        assert promoter.ledger.rows(promoter.model) == rows
