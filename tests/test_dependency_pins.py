"""The antlr4 conflict (dagster-io/dagster#27487) stays resolved: both sides really work."""

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO_ROOT

BIN = Path(sys.executable).parent


def test_installed_versions_are_the_chosen_resolution():
    assert importlib.metadata.version("antlr4-python3-runtime").startswith("4.13.")
    assert importlib.metadata.version("omegaconf") == "2.4.0"  # vendors its own antlr
    assert importlib.metadata.version("dagster").startswith("1.13.")
    assert importlib.metadata.version("dagster-postgres").startswith("0.29.")
    assert importlib.metadata.version("dagster-k8s").startswith("0.29.")


def test_omegaconf_still_parses_interpolations():
    from omegaconf import OmegaConf

    assert OmegaConf.create({"a": 3, "b": "${a}"}).b == 3


def test_real_dagster_cli_asset_selection(home, manifests):
    """`dagster asset materialize --select` parses its selection with antlr4 4.13."""
    env = {**os.environ, "PLIMSOLL_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"),
           "PLIMSOLL_MANIFESTS": str(manifests)}
    done = subprocess.run(
        [str(BIN / "dagster"), "asset", "materialize", "-m", "platform_defs.definitions",
         "--select", 'key:"dataset_slice"', "--partition", "notes"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "RUN_SUCCESS" in done.stderr
    assert (home / "dvc" / "slices" / "notes.parquet.dvc").is_file()


def test_real_dvc_add_push_pull(tmp_path):
    repo, remote = tmp_path / "repo", tmp_path / "remote"
    repo.mkdir()

    def dvc(*args):
        done = subprocess.run([str(BIN / "dvc"), *args], cwd=repo, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    dvc("init", "--no-scm", "-q")
    dvc("remote", "add", "-d", "store", str(remote))
    (repo / "data.txt").write_text("pinned content\n")
    dvc("add", "data.txt")
    dvc("push")
    (repo / "data.txt").unlink()
    for cached in (repo / ".dvc" / "cache").rglob("*"):
        if cached.is_file():
            cached.unlink()
    dvc("pull")
    assert (repo / "data.txt").read_text() == "pinned content\n"


def test_plimsoll_data_path_never_imports_hydra(tmp_path):
    code = ("import sys; from pathlib import Path;"
            "from plimsoll.datasets.store import SliceStore;"
            "s = SliceStore(Path(sys.argv[1]) / 'dvc', sys.argv[1] + '/remote');"
            "import dvc.repo; print([m for m in sys.modules if m.split('.')[0] == 'hydra'])")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                          text=True, check=True)
    assert done.stdout.strip() == "[]"
