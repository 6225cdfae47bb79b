"""Evaluate a fine-tuned bundle against the base encoder and BM25, and log the report."""

from __future__ import annotations

from pathlib import Path

from plimsoll.common.hashing import sha256_file, sha256_json
from plimsoll.common.settings import Settings
from plimsoll.evaluation.eval_registry import EvalRegistry
from plimsoll.evaluation.evalsets import load_evalset
from plimsoll.evaluation.outcome import EvalOutcome
from plimsoll.evaluation.redteam import (
    ATTACK_CATEGORIES,
    ThreatReport,
    load_redteam,
    run_threat_checks,
)
from plimsoll.evaluation.report import markdown, write_report
from plimsoll.evaluation.scoring import evaluate_answerer, evaluate_bm25, evaluate_retrieval
from plimsoll.guard.classifier import MODEL_PATH as CLASSIFIER_PATH
from plimsoll.guard.classifier import classifier_digest
from plimsoll.release.registry import ModelRegistry
from plimsoll.retrieval.snapshot import IndexSnapshot
from plimsoll.serving.answerer import Answerer
from plimsoll.serving.bundles import answerer_from_model_dir, build_answerer
from plimsoll.serving.prompts import load_template


def open_model_to_evaluate(reference: str, destination: Path,
                           settings: Settings | None = None) -> tuple[Answerer, str]:
    """The guarded answerer of a model reference, and a label for reports.

    `models:/NAME/N|latest` and `models:/NAME@ALIAS` are downloaded to `destination` from
    the settings' store (--tracking-uri, else $MLFLOW_TRACKING_URI, else the home's, --home
    or PLIMSOLL_HOME; default: the environment's settings); anything else
    is a model directory. The store is checked first: a SQLite store that does not exist,
    or a server that refuses or does not answer within MLFLOW_HTTP_REQUEST_TIMEOUT, is
    reported as the store at fault, not as a model missing from it, and a typo in a SQLite
    path creates no empty store.
    """
    if not reference.startswith("models:/"):
        return answerer_from_model_dir(Path(reference)), reference
    settings = settings or Settings.from_env()
    registry = _checked_registry(settings.tracking_uri, settings.tracking_uri_source)
    model_dir, version = registry.download(reference, Path(destination))
    return answerer_from_model_dir(model_dir), f"{reference} (version {version})"


def _checked_registry(uri: str, source: str) -> ModelRegistry:
    from plimsoll.common.sql import StoreError, open_engine

    if uri.startswith("sqlite:"):
        try:
            open_engine(uri, "MLflow store", create=False).dispose()
        except StoreError as exc:
            raise StoreError(exc.problem, field=source, fix=exc.fix) from None
        return ModelRegistry(uri)
    registry = ModelRegistry(uri)
    registry.probe(source)
    return registry


def add_threat_metrics(metrics: dict[str, float], threats: ThreatReport) -> None:
    """Attacks that got through are critical violations; the red-team counts ride along."""
    metrics["critical_violations"] = metrics.get("critical_violations", 0) + len(threats.through)
    metrics["redteam_attacks"] = len(threats.attacks)
    metrics["redteam_through"] = len(threats.through)


def run_candidate_eval(*, reports_dir: Path, evalset_path: Path,
                       limit: int | None, seed: int, abstain_below: float,
                       cost_per_cpu_second: float, answer_template: Path,
                       abstain_template: Path, candidate: dict[str, str], base: dict[str, str],
                       registry: ModelRegistry, mlflow_run_id: str, eval_registry: EvalRegistry,
                       model_ref: str, commit_sha: str, guard_policy: Path | None = None,
                       redteam_path: Path | None = None,
                       dev_evalset_path: Path | None = None) -> EvalOutcome:
    """Score candidate, base, BM25 and hybrid; write, log and record the report.

    The candidate's guarded query path also runs the red-team set: attacks that get
    through count as critical violations. `hybrid` is the candidate's encoder with BM25
    fused in (reciprocal rank), measured the same way so the report shows whether it
    helps. The dev set (the one the recipe is chosen on) is scored for retrieval too, in a
    section of its own: the gate reads the eval set only.
    """
    evalset = load_evalset(evalset_path).limited(limit)
    redteam = load_redteam(redteam_path) if redteam_path else None
    templates = (load_template(answer_template), load_template(abstain_template))
    runs, threats, answerers = [], None, {}
    for system, bundle in (("finetuned", candidate), ("base", base)):
        answerer = build_answerer(bundle["encoder_path"], bundle["snapshot_path"],
                                  answer_template, abstain_template,
                                  abstain_below=abstain_below, guard_policy=guard_policy,
                                  mode="answer")
        evalset.check_doc_ids(answerer.snapshot.chunks["doc_id"])
        run = evaluate_answerer(system, answerer, evalset, cost_per_cpu_second)
        if redteam is not None and system == "finetuned":
            # The attacks decide the safety gate; the benign controls (the costly part:
            # each needs a retrieval) are tools/threat_checks.py's job in CI.
            threats = run_threat_checks(answerer, redteam.only(ATTACK_CATEGORIES))
            add_threat_metrics(run.metrics, threats)
        runs.append(run)
        answerers[system] = answerer
    answerers["hybrid"] = answerers["finetuned"].with_retrieval("hybrid")
    snapshot = IndexSnapshot(Path(candidate["snapshot_path"]))
    runs.append(evaluate_bm25(snapshot, evalset))
    runs.append(evaluate_answerer("hybrid", answerers["hybrid"], evalset, cost_per_cpu_second))
    dev_runs = []
    if dev_evalset_path is not None:
        dev = load_evalset(dev_evalset_path)
        dev.check_doc_ids(snapshot.chunks["doc_id"])
        dev_runs = [evaluate_retrieval(system, answerers[system], dev)
                    for system in ("finetuned", "base", "hybrid")]
        dev_runs.append(evaluate_bm25(snapshot, dev))
    context = {"model_ref": model_ref, "eval_set": str(evalset_path.name),
               "eval_set_hash": evalset.content_hash, "questions": len(evalset.questions),
               "seed": seed, "commit": commit_sha, "abstain_below": abstain_below,
               "answer_template": templates[0].ref,
               "index_snapshot_id": Path(candidate["snapshot_path"]).name}
    if threats is not None:
        context["redteam_hash"] = threats.redteam_hash
    if dev_runs:
        context["dev_set"], context["dev_set_hash"] = dev_evalset_path.name, dev.content_hash
    report_id = sha256_json({"context": context,
                             "systems": {r.system: r.metrics for r in runs},
                             "dev": {r.system: r.metrics for r in dev_runs}})[:16]
    paths = write_report(reports_dir / report_id, runs, context, threats, dev_runs)

    metrics = {f"{prefix}.{_metric_key(name)}": value
               for prefix, run in zip(("eval", "base", "bm25", "hybrid"), runs, strict=True)
               for name, value in run.metrics.items()}
    metrics.update({f"dev.{run.system}.{_metric_key(name)}": value
                    for run in dev_runs for name, value in run.metrics.items()})
    registry.log_eval(mlflow_run_id, metrics,
        tags={"eval_set_hash": evalset.content_hash}, artifacts=paths.values(),
        artifact_path="eval_report")
    for run in runs[:2]:
        eval_registry.record(commit_sha=commit_sha, model_ref=model_ref if run.system ==
                             "finetuned" else f"base:{Path(base['encoder_path']).name}",
                             eval_set_hash=evalset.content_hash, seed=seed, system=run.system,
                             metrics=run.metrics)
    eval_registry.close()
    return EvalOutcome(
        systems={r.system: r.metrics for r in runs}, eval_set_hash=evalset.content_hash,
        seed=seed, report_id=report_id, report_digest=sha256_file(paths["json"]),
        paths={k: str(v) for k, v in paths.items()},
        markdown=markdown(runs, context, threats, dev_runs),
        dev_systems={r.system: r.metrics for r in dev_runs},
        abstain_below=abstain_below, answer_template=str(answer_template),
        abstain_template=str(abstain_template), template_ref=templates[0].ref,
        guard_policy=str(guard_policy) if guard_policy else "",
        guard_policy_digest=sha256_file(guard_policy) if guard_policy else "default",
        guard_classifier=str(CLASSIFIER_PATH),
        guard_classifier_digest=classifier_digest(CLASSIFIER_PATH),
        redteam_hash=threats.redteam_hash if threats else "")


def _metric_key(name: str) -> str:
    return name.replace("@", "_at_")
