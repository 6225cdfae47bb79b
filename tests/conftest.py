import json
import os
import socket
from pathlib import Path

import pytest

# No hub access, no telemetry: tests run offline exactly as production does.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["DVC_NO_ANALYTICS"] = "1"
os.environ["GX_ANALYTICS_ENABLED"] = "false"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

REPO_ROOT = Path(__file__).resolve().parent.parent
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}  # Dagster run config
PG_HOST, PG_PORT = "127.0.0.1", 5432


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def write_manifest(directory: Path, file_stem: str, **overrides) -> Path:
    import yaml

    name = file_stem
    manifest = {
        "name": name, "description": f"test slice {name}", "owner": "tests@plimsoll",
        "source": {"kind": "jsonl", "path": f"sources/{name}.jsonl"},
        "schema_version": 1, "classification": "internal", "ttl_days": 30,
        "text_field": "text", "id_field": "id", "min_rows": 2,
    }
    manifest.update(overrides)
    path = directory / f"{file_stem}.yaml"
    directory.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(manifest, sort_keys=False), encoding="utf-8")
    return path


FAQ_ROWS = [
    {"id": f"doc-{i}", "title": title, "text": text}
    for i, (title, text) in enumerate([
        ("Rollback", "Run plimsoll rollback to move the champion alias back to the previous "
         "model version; weights, index snapshot and prompt template revert together."),
        ("Slices", "A dataset slice is declared by a manifest with owner, source, "
         "classification and a time to live in days."),
        ("Snapshots", "An index snapshot is immutable and content addressed: its id is the "
         "hash of the encoder digest, chunking parameters and slice hashes."),
        ("Cache", "The embedding cache is keyed by encoder digest and chunk hash, so "
         "unchanged chunks are never embedded twice."),
        ("Regex", "Use re.split to split a string on every match of a regular expression "
         "pattern; it returns a list of the pieces."),
        ("Sorting", "sorted() returns a new sorted list from the items of any iterable, "
         "while list.sort() sorts a list in place."),
    ])
]


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A fresh PLIMSOLL_HOME (and DAGSTER_HOME inside it) for one test."""
    root = tmp_path / "home"
    (root / "dagster").mkdir(parents=True)
    monkeypatch.setenv("PLIMSOLL_HOME", str(root))
    monkeypatch.setenv("DAGSTER_HOME", str(root / "dagster"))
    monkeypatch.delenv("PLIMSOLL_PROFILE", raising=False)
    monkeypatch.delenv("PLIMSOLL_DVC_REMOTE", raising=False)
    return root


@pytest.fixture
def manifests(tmp_path, monkeypatch) -> Path:
    """A manifests folder with two small JSONL slices, selected via PLIMSOLL_MANIFESTS."""
    directory = tmp_path / "manifests"
    write_jsonl(directory / "sources" / "faq.jsonl", FAQ_ROWS)
    write_jsonl(directory / "sources" / "notes.jsonl", [
        {"id": "note-1", "text": "Blocking checks stop downstream assets in the same run."},
        {"id": "note-2", "text": "Pin slices with plimsoll data pin and commit the pointers."},
    ])
    write_manifest(directory, "faq")
    write_manifest(directory, "notes")
    monkeypatch.setenv("PLIMSOLL_MANIFESTS", str(directory))
    return directory


@pytest.fixture(scope="session")
def encoder_dir():
    from plimsoll.retrieval.encoder import EncoderDirectory

    return EncoderDirectory.open(None)


@pytest.fixture(scope="session")
def encoder(encoder_dir):
    from plimsoll.retrieval.encoder import Encoder

    return Encoder(encoder_dir)


def postgres_available() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def make_postgres_db():
    """Creates fresh PostgreSQL databases; skipped only outside CI when the server is absent."""
    if not postgres_available():
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is not reachable on {PG_HOST}:{PG_PORT}, and CI must run "
                        "the production-profile tests")
        pytest.skip(f"PostgreSQL is not reachable on {PG_HOST}:{PG_PORT}")
    import uuid

    import psycopg2

    admin = psycopg2.connect(host=PG_HOST, port=PG_PORT, user="postgres", dbname="postgres")
    admin.autocommit = True
    created = []

    def create() -> str:
        name = f"plimsoll_test_{uuid.uuid4().hex[:8]}"
        admin.cursor().execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return f"postgresql+psycopg2://postgres@{PG_HOST}:{PG_PORT}/{name}"

    try:
        yield create
    finally:
        for name in created:
            admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def postgres_url(make_postgres_db):
    """One fresh PostgreSQL database."""
    return make_postgres_db()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def mlflow_server(make_postgres_db, tmp_path):
    """A real `mlflow server` with a PostgreSQL backend store, serving artifacts over HTTP."""
    import subprocess
    import sys
    import time
    import urllib.request

    port = _free_port()
    log = (tmp_path / "mlflow-server.log").open("w")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "server",
         "--backend-store-uri", make_postgres_db(),
         "--artifacts-destination", str(tmp_path / "mlflow-artifacts"),
         "--serve-artifacts", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("mlflow server did not start:\n" +
                                   (tmp_path / "mlflow-server.log").read_text()[-3000:])
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


PROD_ENV = {"PLIMSOLL_PROFILE": "prod", "PLIMSOLL_DVC_REMOTE": "s3://plimsoll-data/dvc",
            "DAGSTER_PG_URL": "postgresql+psycopg2://dagster@db:5432/dagster",
            "MLFLOW_TRACKING_URI": "https://mlflow.plimsoll.internal",
            "PLIMSOLL_EVAL_REGISTRY_URL": "postgresql+psycopg2://evals@db:5432/evals",
            "PLIMSOLL_SIGNING_KEY": "test-signing-key"}
GPU_JOB_IMAGE = "registry.plimsoll.internal/plimsoll@sha256:" + "0" * 64


def build_gpu_job(monkeypatch) -> dict:
    """The Job dagster-k8s would launch for finetuned_encoder in the prod profile, offline."""
    for key, value in PROD_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("PLIMSOLL_MANIFESTS", raising=False)
    from dagster_k8s.job import (
        DagsterK8sJobConfig,
        construct_dagster_k8s_job,
        get_user_defined_k8s_config,
    )
    from kubernetes.client import ApiClient

    from platform_defs.definitions import defs

    tags = defs().get_assets_def("finetuned_encoder").op.tags
    job = construct_dagster_k8s_job(
        job_config=DagsterK8sJobConfig(
            job_image=GPU_JOB_IMAGE, dagster_home="/opt/dagster/dagster_home",
            image_pull_policy="IfNotPresent", instance_config_map="dagster-instance"),
        args=["dagster", "api", "execute_step"],
        job_name="dagster-step-finetuned-encoder",
        user_defined_k8s_config=get_user_defined_k8s_config(tags),
        component="step_worker")
    return ApiClient().sanitize_for_serialization(job)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """A small registrable bundle: the base encoder and a snapshot of FAQ_ROWS."""
    from plimsoll.datasets.manifests import load_manifest
    from plimsoll.datasets.slices import build_slice
    from plimsoll.datasets.store import SliceStore
    from plimsoll.guard.classifier import MODEL_PATH as CLASSIFIER_PATH
    from plimsoll.release.registry import Bundle
    from plimsoll.retrieval.chunking import ChunkingParams
    from plimsoll.retrieval.encoder import EncoderDirectory
    from plimsoll.retrieval.snapshot import SnapshotBuilder

    root = tmp_path_factory.mktemp("bundle")
    write_jsonl(root / "m" / "sources" / "faq.jsonl", FAQ_ROWS)
    store = SliceStore(root / "dvc", str(root / "remote"))
    published = store.publish(build_slice(load_manifest(write_manifest(root / "m", "faq"))))
    encoder_dir = EncoderDirectory.open(None)
    snapshot = SnapshotBuilder(root / "snaps", root / "cache", encoder_dir,
                               ChunkingParams()).build([published])
    return Bundle(encoder_dir=encoder_dir.path, snapshot_dir=snapshot.path,
                  answer_template=REPO_ROOT / "prompts" / "answer.md",
                  abstain_template=REPO_ROOT / "prompts" / "abstain.md",
                  guard_policy=REPO_ROOT / "policies" / "guard.yaml",
                  guard_classifier=CLASSIFIER_PATH)
