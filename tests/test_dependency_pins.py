"""The pins hold: the locks agree with pyproject.toml (`make lock` rewrites them), and the
antlr4 conflict (dagster-io/dagster#27487) stays resolved: both sides really work."""

import hashlib
import importlib.metadata
import os
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

BIN = Path(sys.executable).parent
LOCK = REPO_ROOT / "requirements.lock"
OVERRIDES = REPO_ROOT / "requirements-overrides.txt"
IMAGE_LOCK = REPO_ROOT / "k8s" / "image" / "requirements.lock"
MLFLOW_SERVER_IN = REPO_ROOT / "k8s" / "image" / "mlflow-server.in"
MLFLOW_SERVER_LOCK = REPO_ROOT / "k8s" / "image" / "mlflow-server.lock"
# What uv writes under a pin that pyproject.toml asks for (`# via plimsoll (pyproject.toml)`).
FROM_PYPROJECT = "plimsoll (pyproject.toml)"
# The platform `make lock` resolves for; markers in pyproject.toml are read against it.
LOCK_TARGET = {"python_version": "3.11", "sys_platform": "linux", "platform_system": "Linux",
               "platform_machine": "x86_64", "os_name": "posix"}


@dataclass
class Lock:
    """A uv lock file: each pin's version, its sha256 hashes and what asked for it (`# via`)."""

    versions: dict[str, Version] = field(default_factory=dict)
    hashes: dict[str, set[str]] = field(default_factory=dict)
    via: dict[str, set[str]] = field(default_factory=dict)


def read_lock(text: str) -> Lock:
    lock, name = Lock(), None
    for line in text.splitlines():
        entry = line.strip()
        if line[:1].isalnum():
            pin = Requirement(line.rstrip(" \\"))
            name = canonicalize_name(pin.name)
            (exact,) = pin.specifier
            lock.versions[name] = Version(exact.version)
            lock.hashes[name], lock.via[name] = set(), set()
        elif name is None:
            continue  # the header, before the first pin
        elif entry.startswith("--hash=sha256:"):
            lock.hashes[name].add(entry.removeprefix("--hash=sha256:").rstrip(" \\"))
        elif entry.startswith("# via "):
            lock.via[name].add(entry.removeprefix("# via "))
        elif entry.startswith("#   "):
            lock.via[name].add(entry.removeprefix("#   "))
    return lock


def requirement_lines(text: str) -> list[Requirement]:
    return [Requirement(line) for line in text.splitlines() if line and not line.startswith("#")]


def project_requirements(*extras: str) -> list[Requirement]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + [
        req for extra in extras for req in project["optional-dependencies"][extra]]
    return [req for req in map(Requirement, wanted)
            if req.marker is None or req.marker.evaluate(LOCK_TARGET)]


def disagreements(requirements: list[Requirement], lock: Lock, lock_name: str, source: str,
                  source_name: str) -> list[str]:
    """Each way the lock and its source disagree: a requirement the lock leaves out or pins
    outside its range, and a pin the lock holds for the source that the source dropped."""
    problems, asked = [], {canonicalize_name(req.name) for req in requirements}
    for req in requirements:
        name = canonicalize_name(req.name)
        if name not in lock.versions:
            problems.append(f"{source_name} asks for {req}; {lock_name} has no {name}")
        elif not req.specifier.contains(lock.versions[name], prereleases=True):
            problems.append(f"{lock_name} pins {name}=={lock.versions[name]}, outside "
                            f"{source_name}'s {req}")
    for name, via in sorted(lock.via.items()):
        if source in via and name not in asked:
            problems.append(f"{lock_name} pins {name} for {source_name}, which no longer asks "
                            "for it")
    return problems


def same_versions(lock: Lock, lock_name: str, other: Lock, other_name: str) -> list[str]:
    """Pins the two locks share at different versions (torch's +cpu label aside)."""
    return [f"{lock_name} pins {name}=={lock.versions[name]}, {other_name} "
            f"{name}=={other.versions[name]}"
            for name in sorted(lock.versions.keys() & other.versions.keys())
            if lock.versions[name].public != other.versions[name].public]


def assert_agree(problems: list[str]) -> None:
    assert not problems, "\n".join(
        [*problems, "The locks are written from pyproject.toml: run `make lock` (it upgrades "
         "to the newest versions pyproject.toml allows; `make lock LOCK_UPGRADE=` keeps every "
         "pin that still fits) and commit the locks with pyproject.toml."])


def test_the_lock_pins_exactly_what_pyproject_asks_for():
    lock = read_lock(LOCK.read_text())
    problems = disagreements(project_requirements("dev"), lock, "requirements.lock",
                             FROM_PYPROJECT, "pyproject.toml (dependencies + dev)")
    overrides = {canonicalize_name(req.name): req for req in
                 requirement_lines(OVERRIDES.read_text())}
    for name, req in overrides.items():
        if name not in lock.versions or lock.versions[name] not in req.specifier:
            problems.append(f"requirements-overrides.txt sets {req}; requirements.lock pins "
                            f"{name}=={lock.versions.get(name)}")
    overridden = {name for name, via in lock.via.items()
                  if any(v.startswith("--override") for v in via)}
    problems += [f"requirements.lock overrides {name}, which requirements-overrides.txt "
                 "no longer sets" for name in sorted(overridden - overrides.keys())]
    assert_agree(problems)
    assert {name for name, via in lock.via.items() if FROM_PYPROJECT in via}  # read the via


def test_every_pin_has_its_hashes_and_torch_is_the_cpu_build_on_disk():
    """pip's --require-hashes refuses a pin without one; a CUDA torch costs several GB."""
    locks = {path: read_lock(path.read_text()) for path in (LOCK, IMAGE_LOCK, MLFLOW_SERVER_LOCK)}
    unhashed = [f"{path.relative_to(REPO_ROOT)}: {name}" for path, lock in locks.items()
                for name, hashes in lock.hashes.items() if not hashes]
    assert not unhashed, unhashed
    lock = locks[LOCK]
    assert lock.versions["torch"].local == "cpu", (
        f"requirements.lock pins torch=={lock.versions['torch']}, not the CPU build: run "
        "`make lock` on a machine whose PIP_FIND_LINKS holds it")
    assert not [name for name in lock.versions if name.startswith(("nvidia-", "triton"))]
    wheels = Path(os.environ.get("PIP_FIND_LINKS", "/opt/wheels"))
    on_disk = sorted(wheels.glob(f"torch-{lock.versions['torch']}-cp311-*.whl"))
    if not on_disk:
        pytest.skip(f"no torch {lock.versions['torch']} wheel in {wheels}")
    with on_disk[0].open("rb") as wheel:
        digest = hashlib.file_digest(wheel, "sha256").hexdigest()
    assert digest in lock.hashes["torch"], f"{on_disk[0]} is not the file requirements.lock pins"


def test_the_image_locks_follow_the_lock():
    lock = read_lock(LOCK.read_text())
    image = read_lock(IMAGE_LOCK.read_text())
    server = read_lock(MLFLOW_SERVER_LOCK.read_text())
    problems = disagreements(project_requirements("s3"), image, "k8s/image/requirements.lock",
                             FROM_PYPROJECT, "pyproject.toml (dependencies + s3)")
    problems += same_versions(image, "k8s/image/requirements.lock", lock, "requirements.lock")
    problems += disagreements(requirement_lines(MLFLOW_SERVER_IN.read_text()), server,
                              "k8s/image/mlflow-server.lock", "-r k8s/image/mlflow-server.in",
                              "k8s/image/mlflow-server.in")
    problems += same_versions(server, "k8s/image/mlflow-server.lock", image,
                              "k8s/image/requirements.lock")
    assert_agree(problems)
    # The deployment runs the server image by its mlflow version; a new lock needs a new tag.
    deployment = (REPO_ROOT / "k8s" / "base" / "mlflow" / "mlflow.yaml").read_text()
    (tag,) = re.findall(r"image: \S+/mlflow-server:(\S+)", deployment)
    assert Version(tag) == server.versions["mlflow"], (
        f"k8s/base/mlflow/mlflow.yaml runs mlflow-server:{tag}, the locks pin mlflow=="
        f"{server.versions['mlflow']}: build that image and set its tag there")


def test_a_lock_that_disagrees_fails_and_says_to_run_make_lock():
    lock = read_lock("# This file was autogenerated by uv via the following command:\n"
                     "#    make lock\n"
                     "bm25s==0.3.16 \\\n    --hash=sha256:aa\n    # via plimsoll (pyproject.toml)\n"
                     "numpy==2.4.6 \\\n    --hash=sha256:bb\n    # via\n"
                     "    #   bm25s\n    #   plimsoll (pyproject.toml)\n")
    assert lock.versions == {"bm25s": Version("0.3.16"), "numpy": Version("2.4.6")}
    assert lock.via["numpy"] == {"bm25s", FROM_PYPROJECT}
    problems = disagreements([Requirement("bm25s>=0.4"), Requirement("mistune>=3")], lock,
                             "requirements.lock", FROM_PYPROJECT, "pyproject.toml")
    assert problems == [
        "requirements.lock pins bm25s==0.3.16, outside pyproject.toml's bm25s>=0.4",
        "pyproject.toml asks for mistune>=3; requirements.lock has no mistune",
        "requirements.lock pins numpy for pyproject.toml, which no longer asks for it",
    ]
    with pytest.raises(AssertionError, match=r"run `make lock`"):
        assert_agree(problems)


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
