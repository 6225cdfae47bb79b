"""The prod profile's Kubernetes step settings: the fine-tune runs as a GPU step job."""

from pathlib import Path

from plimsoll.datasets.manifests import Classification, load_manifest, manifest_paths

_ORDER = [c.value for c in Classification]  # public < internal < confidential < restricted
GPU_NAMESPACE = "plimsoll-gpu"


def strictest_classification(manifests_dir: Path) -> str:
    """The most sensitive classification among the slices (restricted if any is unreadable)."""
    levels = []
    for path in manifest_paths(manifests_dir):
        try:
            levels.append(load_manifest(path).classification.value)
        except Exception:
            return Classification.RESTRICTED.value
    return max(levels, key=_ORDER.index, default=Classification.INTERNAL.value)


def gpu_step_op_tags(manifests_dir: Path | None = None) -> dict:
    """`dagster-k8s/config` op tags for the fine-tune step: one GPU, GPU nodes, labels."""
    from plimsoll.common.settings import Settings

    directory = manifests_dir or Settings.from_env().manifests
    labels = {"data-classification": strictest_classification(directory),
              "owner": "ml-platform", "app.kubernetes.io/part-of": "plimsoll",
              "plimsoll.io/workload": "finetune"}
    return {"dagster-k8s/config": {
        "container_config": {
            "resources": {
                "requests": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"},
                "limits": {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "1"}},
            "security_context": {"allow_privilege_escalation": False, "privileged": False}},
        "pod_spec_config": {
            "node_selector": {"plimsoll.io/pool": "gpu"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists",
                             "effect": "NoSchedule"}]},
        "pod_template_spec_metadata": {"labels": labels},
        "job_metadata": {"labels": labels},
    }}
