"""An installed, non-editable package finds the project's files where PLIMSOLL_PROJECT_DIR says.

The prod image installs the wheel into site-packages and copies the data folders elsewhere;
a path computed from a module's own location would point into site-packages and miss them.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT

from plimsoll.common.home import HomeLayout

PROJECT_FOLDERS = ("policies", "data_manifests", "evalsets", "prompts")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The project built as a wheel and installed (no dependencies) into a folder of its own."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    # A copy without the project folders: only what the wheel packs can be found.
    shutil.copytree(REPO_ROOT, source, ignore=shutil.ignore_patterns(
        ".venv", ".plimsoll", ".git", "k8s", "tests", "*.egg-info", "build", "__pycache__",
        ".checkov-venv"))
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(work / "dist"), str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    target = work / "site"
    wheel = next((work / "dist").glob("plimsoll-*.whl"))
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                           "--target", str(target), str(wheel)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    for folder in PROJECT_FOLDERS:
        assert not (target / folder).exists(), f"the wheel should not carry {folder}/"
    return target


def _run(installed: Path, code: list[str], project: Path | None, cwd: Path, home: Path
         ) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(installed), "PLIMSOLL_HOME": str(home),
           "DAGSTER_HOME": str(home / "dagster")}
    for name in ("PLIMSOLL_PROJECT_DIR", "PLIMSOLL_POLICY", "PLIMSOLL_MANIFESTS",
                 "MLFLOW_TRACKING_URI"):
        env.pop(name, None)
    if project is not None:
        env["PLIMSOLL_PROJECT_DIR"] = str(project)
    return subprocess.run([sys.executable, *code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_installed_package_loads_definitions_and_runs_status(installed, tmp_path):
    project = tmp_path / "app"
    for folder in PROJECT_FOLDERS:
        shutil.copytree(REPO_ROOT / folder, project / folder)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = ("import plimsoll, platform_defs.definitions as d; print(plimsoll.__file__); "
            "defs = d.defs(); r = defs.resources; "
            "print(r['promotion'].policy_path); print(r['manifests'].directory); "
            "print(r['project'].evalset); "
            "print(defs.get_assets_def('dataset_slice').partitions_def.get_partition_keys())")
    loaded = _run(installed, ["-c", code], project, elsewhere, tmp_path / "home")
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    lines = loaded.stdout.splitlines()
    assert lines[0].startswith(str(installed)), "the installed copy must be the one imported"
    assert lines[1:4] == [str(project / "policies" / "slos.yaml"),
                          str(project / "data_manifests"),
                          str(project / "evalsets" / "python_docs_ci.jsonl")]
    assert "python_help_topics" in lines[4]
    home = HomeLayout(tmp_path / "home")
    home.mlflow.mkdir(parents=True, exist_ok=True)
    made = _run(installed, ["-c", "import mlflow, sys; mlflow.MlflowClient(sys.argv[1])"
                            ".search_registered_models()", home.mlflow_tracking_uri],
                project, elsewhere, home.root)
    assert made.returncode == 0, made.stderr[-2000:]
    status = _run(installed, ["-m", "plimsoll.cli", "status"], project, elsewhere, home.root)
    assert status.returncode == 0, status.stderr[-3000:]
    assert "no versions of plimsoll-docs-assistant yet" in status.stdout


def test_installed_package_without_a_project_says_where_to_point(installed, tmp_path):
    """No project folder anywhere: loading the definitions names the policy and the fix."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    loaded = _run(installed, ["-c", "import platform_defs.definitions as d; d.defs()"], None,
                  elsewhere, tmp_path / "home")
    assert loaded.returncode != 0
    assert str(elsewhere / "policies" / "slos.yaml") in loaded.stderr
    assert "PLIMSOLL_POLICY" in loaded.stderr
