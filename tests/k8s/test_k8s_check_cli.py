"""tools/k8s_check.py end to end: --help, the full run (checkov included), failures."""

import subprocess
import sys

import pytest
from k8s_helpers import REPO_ROOT, k8s_check, need_checkov, need_kubectl, need_module

TOOL = [sys.executable, str(REPO_ROOT / "tools" / "k8s_check.py")]


def run(*args, **env):
    import os

    return subprocess.run([*TOOL, *args], capture_output=True, text=True, check=False,
                          cwd=REPO_ROOT, env={**os.environ, **env}, timeout=300)


def test_help():
    proc = run("--help")
    assert proc.returncode == 0
    for word in ("--overlay", "--today", "--skip-checkov", "--write-templates", "Exit 0"):
        assert word in proc.stdout


# `make test` runs this same command first (make k8s-check) and stops when it fails, so CI
# has the check once; the nightly job runs it as a test too.
@pytest.mark.slow
def test_the_full_check_passes(tmp_path):
    need_kubectl()
    need_module("kubernetes_validate", "kubernetes-validate")
    need_module("regopy", "regopy")
    need_checkov()
    proc = run("--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for stage in ("render", "schema", "policies", "exceptions", "checkov"):
        assert f"PASS  {stage}" in proc.stdout
    assert "all passed" in proc.stdout
    assert {p.name for p in tmp_path.iterdir()} == {"prod.yaml", "staging.yaml"}


def test_checkov_finds_a_weak_manifest(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: bad, namespace: plimsoll}\n"
        "spec:\n  containers:\n  - name: main\n    image: registry.plimsoll.internal/x:1\n"
        "    securityContext: {privileged: true}\n")
    need_checkov()
    count, failures = k8s_check().run_checkov([bad], "kubernetes")
    assert count > 0
    assert any(f.startswith("CKV_K8S_16 ") for f in failures)  # privileged container


def test_every_checkov_skip_has_a_reason():
    for check, (reason, overlays) in k8s_check().CHECKOV_SKIPS.items():
        assert check.startswith("CKV_") and len(reason) > 20
        assert overlays is None or set(overlays) <= set(k8s_check().overlays())


def test_an_expired_exception_makes_the_check_fail():
    need_kubectl()
    proc = run("--skip-checkov", "--today", "2027-02-01")
    assert proc.returncode == 1
    assert "FAIL  exceptions" in proc.stdout and "expired on 2027-02-01" in proc.stdout


def test_a_missing_tool_is_named():
    proc = run("--overlay", "prod", KUBECTL="/nonexistent/kubectl", PATH="/nonexistent")
    assert proc.returncode == 2
    assert "MISSING TOOL: kubectl not found" in proc.stderr
