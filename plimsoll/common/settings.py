"""The one settings object: every default once, every project path resolved the same way.

Read inside the Dagster definitions function and by the CLI, never at import time. Project
data (policies, manifests, eval sets, prompts) resolves from $PLIMSOLL_PROJECT_DIR, else the
nearest folder up from the working directory that holds policies/slos.yaml, else the checkout
the package runs from; so an installed, non-editable package finds them when pointed there.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from plimsoll.common.home import DEFAULT_HOME, HomeLayout, resolve_home
from plimsoll.common.project import project_dir, project_path

# Defaults that more than one stage needs, stated once.
MODEL_NAME = "plimsoll-docs-assistant"
# Answer only when the best passage scores at least this (cosine); below it, abstain.
ABSTAIN_BELOW = 0.35
# Currency units per CPU-second, for cost per request.
COST_PER_CPU_SECOND = 0.00005

# Project files, relative to the project folder, each with the variable that overrides it.
PROJECT_FILES: dict[str, tuple[str, str]] = {
    "policy": ("PLIMSOLL_POLICY", "policies/slos.yaml"),
    "guard_policy": ("PLIMSOLL_GUARD_POLICY", "policies/guard.yaml"),
    "fallbacks": ("PLIMSOLL_FALLBACKS", "policies/fallbacks.yaml"),
    "observability": ("PLIMSOLL_OBSERVABILITY", "policies/observability.yaml"),
    "manifests": ("PLIMSOLL_MANIFESTS", "data_manifests"),
    "prompts": ("PLIMSOLL_PROMPTS", "prompts"),
    "evalset": ("PLIMSOLL_EVALSET", "evalsets/python_docs_ci.jsonl"),
    # The dev set: early stopping and recipe choices read it; never trained on, never gated.
    "dev_evalset": ("PLIMSOLL_DEV_EVALSET", "evalsets/python_docs_dev.jsonl"),
    "redteam": ("PLIMSOLL_REDTEAM", "evalsets/redteam.jsonl"),
    # Rendered with each version's numbers at registration, logged with the model.
    "model_card": ("PLIMSOLL_MODEL_CARD", "policies/model_card.md"),
}
# Where people open the MLflow UI (`make mlflow-ui`), for links from Dagster's pages; a
# tracking server's own URL wins, and $PLIMSOLL_MLFLOW_UI_URL over both.
MLFLOW_UI_URL = "http://127.0.0.1:5000"


@dataclass(frozen=True)
class Settings:
    """Where everything is and the defaults every stage shares, resolved once."""

    project_dir: Path
    home: Path
    policy: Path
    guard_policy: Path
    fallbacks: Path
    observability: Path
    manifests: Path
    prompts: Path
    evalset: Path
    dev_evalset: Path
    redteam: Path
    model_card: Path
    # The MLflow store, and what chose it (for messages that say what to change).
    tracking_uri: str
    tracking_uri_source: str
    model_name: str = MODEL_NAME
    abstain_below: float = ABSTAIN_BELOW
    cost_per_cpu_second: float = COST_PER_CPU_SECOND
    encoder_path: str = ""
    # Plimsoll's own SQL store (promotion ledger, lineage records, flags, shadow pairs):
    # $PLIMSOLL_LEDGER_URL, else the home's SQLite file.
    ledger_url: str = ""
    mlflow_ui_url: str = MLFLOW_UI_URL

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, home: str | None = None,
                 tracking_uri: str | None = None) -> Settings:
        """Settings from the environment (default os.environ); arguments override it."""
        env = os.environ if env is None else env
        root = project_dir(env)
        files = {name: _in(root, env.get(var) or default)
                 for name, (var, default) in PROJECT_FILES.items()}
        if home is None and env.get("PLIMSOLL_HOME"):
            home = env["PLIMSOLL_HOME"]
        resolved_home = resolve_home(home) if home else root / DEFAULT_HOME
        if tracking_uri:
            uri, source = tracking_uri, "--tracking-uri"
        elif env.get("MLFLOW_TRACKING_URI"):
            uri, source = env["MLFLOW_TRACKING_URI"], "$MLFLOW_TRACKING_URI"
        else:
            uri, source = HomeLayout(resolved_home).mlflow_tracking_uri, "PLIMSOLL_HOME"
        return cls(project_dir=root, home=resolved_home, tracking_uri=uri,
                   tracking_uri_source=source,
                   encoder_path=env.get("PLIMSOLL_ENCODER_PATH", ""),
                   ledger_url=env.get("PLIMSOLL_LEDGER_URL")
                   or HomeLayout(resolved_home).ledger_url,
                   mlflow_ui_url=(env.get("PLIMSOLL_MLFLOW_UI_URL") or (
                       uri if uri.startswith(("http://", "https://")) else MLFLOW_UI_URL)
                   ).rstrip("/"), **files)

    @property
    def layout(self) -> HomeLayout:
        """Named locations under the home folder."""
        return HomeLayout(self.home)


def _in(root: Path, relative: str | os.PathLike[str]) -> Path:
    path = Path(relative).expanduser()
    return path if path.is_absolute() else root / path


__all__ = ["ABSTAIN_BELOW", "COST_PER_CPU_SECOND", "MODEL_NAME", "Settings", "project_dir",
           "project_path"]
