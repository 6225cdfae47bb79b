"""The one Definitions object of the Plimsoll code location (workspace.yaml points here)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from assets.datasets import build_dataset_slice
from assets.evaluation import build_eval_report, nightly_eval
from assets.observability import drift_report, golden_signals, request_features_daily
from assets.release import build_candidate_model
from assets.retrieval import build_candidate_index, build_embeddings_index
from assets.serving import shadow_comparison
from assets.training import build_training_assets
from platform_defs.k8s import gpu_step_op_tags
from platform_defs.profiles import active_profile, resources_for
from plimsoll.datasets.manifests import slice_names
from plimsoll.release.policy import load_policy
from plimsoll.release.registry import bound_mlflow_calls
from sensors.nightly import nightly_eval_job, nightly_schedule
from sensors.promotion import approval_sensor, promotion_gate_sensor
from sensors.rollback import rollback_job


@dg.definitions
def defs() -> dg.Definitions:
    """Build the code location for the active profile (read now, not at import)."""
    bound_mlflow_calls()  # this process's MLflow HTTP limits (MLflow reads only the env)
    profile = active_profile()
    resources = resources_for(profile)
    policy = load_policy(Path(resources["promotion"].policy_path))  # invalid: load fails
    _check_fallbacks()
    names = slice_names(Path(resources["manifests"].directory))
    dataset_slice = build_dataset_slice(names)
    embeddings_index = build_embeddings_index(names)
    training = build_training_assets(names, gpu_step_op_tags(Path(resources["manifests"].directory))
                                     if profile == "prod" else None)
    candidate = [build_candidate_index(names), build_eval_report(), build_candidate_model()]
    return dg.Definitions(
        assets=[dataset_slice, embeddings_index, *training, *candidate, nightly_eval,
                shadow_comparison, request_features_daily, drift_report, golden_signals],
        jobs=[
            dg.define_asset_job("dataset_slices_job", selection=[dataset_slice.key],
                                description="Load, check and publish one dataset slice."),
            dg.define_asset_job("embeddings_index_job", selection=[embeddings_index.key],
                                description="Build (or reuse) the index snapshot."),
            dg.define_asset_job(
                "candidate_job",
                selection=dg.AssetSelection.assets(*training, *candidate),
                description="Pairs → fine-tune → candidate index → eval → registered version."),
            rollback_job,
            nightly_eval_job,
        ],
        schedules=[nightly_schedule(policy.nightly.cron, policy.nightly.timezone)],
        sensors=[promotion_gate_sensor, approval_sensor],
        resources=resources,
        executor=_prod_executor() if profile == "prod" else None,
        metadata={"profile": profile},
    )


def _check_fallbacks() -> None:
    """policies/fallbacks.yaml is checked at load like the SLOs: the gateway serves by it."""
    from plimsoll.common.settings import Settings
    from plimsoll.serving.fallbacks import load_fallback_policy

    path = Settings.from_env().fallbacks
    if path.exists():  # an installed package without the project's policies has none
        load_fallback_policy(path)


def _prod_executor() -> dg.ExecutorDefinition:
    """Each step is its own Kubernetes Job, so the fine-tune step gets its GPU pod.

    Step Jobs go to the GPU namespace: the run pods' service account may create Jobs only
    there (k8s/base/serviceaccounts.yaml), and Gatekeeper admits GPU pods only there.
    """
    from dagster_k8s import k8s_job_executor

    from platform_defs.k8s import GPU_NAMESPACE

    return k8s_job_executor.configured({"job_namespace": GPU_NAMESPACE}, name="k8s")
