"""A registry with released versions, and real gateways on loopback, for the serving tests."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
MODEL = "plimsoll-docs-assistant"


@dataclass
class ServingHome:
    """A PLIMSOLL_HOME with an MLflow store, a ledger and registered versions."""

    root: Path
    versions: list[str]

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.root / 'mlflow' / 'mlflow.db'}"

    @property
    def ledger_url(self) -> str:
        return f"sqlite:///{self.root / 'promotion_ledger.sqlite'}"

    def promoter(self):
        from plimsoll.release.aliases import SqlAliases
        from plimsoll.release.ledger import PromotionLedger
        from plimsoll.release.lineage_record import LineageRecords
        from plimsoll.release.promotion import Promoter

        return Promoter(None, PromotionLedger(self.ledger_url), None, MODEL,
                        aliases=SqlAliases(self.tracking_uri),
                        records=LineageRecords(self.ledger_url))

    def promote(self, version: str) -> None:
        """Move champion the way an approval does: a ledger intent, the alias, done."""
        self.promoter()._move_champion(version, action="promote", actor="test",
                                       reason="test promotion", digest="")


def build_serving_home(root: Path, bundle, count: int = 2) -> ServingHome:
    """Register `count` versions of `bundle` (different lineage) under `root`."""
    from plimsoll.release.ledger import PromotionLedger
    from plimsoll.release.lineage_record import LineageRecords
    from plimsoll.release.registry import ModelRegistry, lineage_tags
    from plimsoll.serving.pyfunc import pyfunc_model

    (root / "mlflow").mkdir(parents=True, exist_ok=True)
    home = ServingHome(root, [])
    ledger = PromotionLedger(home.ledger_url)
    registry = ModelRegistry(home.tracking_uri, artifact_root=str(root / "mlflow" / "artifacts"),
                             records=LineageRecords(ledger.url))
    experiment = registry.ensure_reachable()
    for number in range(count):
        with registry.training_run(experiment, f"serving-{number}", {}) as run:
            version = registry.register(MODEL, bundle, lineage_tags({
                "bundle_key": f"serving-{number}", "eval_scores": {}, "trained_by": "alice",
                "git_commit": f"{number:040x}", "mlflow_run_id": run.run_id,
                "guard_policy_digest": f"policy-{number}",
                "guard_classifier_digest": f"classifier-{number}"}), run.run_id,
                pyfunc_model())
        home.versions.append(version)
    return home


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def call(base: str, path: str, body: object = None, *, raw: bytes | None = None,
         headers: dict[str, str] | None = None, method: str | None = None,
         timeout: float = 30) -> tuple[int, dict, dict[str, str]]:
    """(status, JSON body, headers) of one request; errors are answers too."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None
                                        else None)
    request = urllib.request.Request(base + path, data=data, method=method or (
        "POST" if data is not None else "GET"),
        headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read()), _lower(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}"), _lower(error.headers)


def ask(base: str, question: str = "How do I install the package?", **fields) -> dict:
    status, body, headers = call(base, "/v1/answer", {"question": question, **fields})
    assert status == 200, body
    body["_headers"] = headers
    return body


class ThreadServer:
    """A real uvicorn server on loopback, in this process (so tests can reach the gateway)."""

    def __init__(self, app) -> None:
        import uvicorn

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def start_cli_server(home: ServingHome, *args: str, log: Path,
                     env: dict[str, str] | None = None,
                     port: int | None = None) -> tuple[subprocess.Popen, str]:
    """`plimsoll serve` as on-call runs it: its own process, the home's stores."""
    port = port or free_port()
    environment = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    environment.update({"PLIMSOLL_HOME": str(home.root), **(env or {})})
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "plimsoll"), "serve", "--port", str(port), *args],
        cwd=REPO_ROOT, env=environment, stdout=log.open("w"), stderr=subprocess.STDOUT)
    return process, f"http://127.0.0.1:{port}"


def wait_ready(base: str, process: subprocess.Popen | None = None, timeout: float = 120,
               log: Path | None = None) -> dict:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"plimsoll serve exited {process.returncode}:\n"
                               + (log.read_text()[-3000:] if log else ""))
        try:
            status, body, _ = call(base, "/readyz", timeout=5)
            if status == 200:
                return body
            last = body
        except OSError as exc:
            last = exc
        time.sleep(0.2)
    raise RuntimeError(f"not ready after {timeout}s: {last}\n"
                       + (log.read_text()[-3000:] if log else ""))


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


def _lower(headers) -> dict[str, str]:
    return {key.lower(): value for key, value in headers.items()}
