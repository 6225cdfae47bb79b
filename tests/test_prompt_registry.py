"""Prompts in MLflow's prompt registry: one version per content, named in the lineage."""

import shutil

import pytest
from conftest import REPO_ROOT

from plimsoll.release.candidate import register_prompts
from plimsoll.release.registry import ModelRegistry, RegistryError


@pytest.fixture
def registry(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return ModelRegistry(uri, artifact_root=str(tmp_path / "artifacts"))


def test_each_template_registers_once_and_a_change_is_a_new_version(registry, tmp_path):
    prompts = tmp_path / "prompts"
    shutil.copytree(REPO_ROOT / "prompts", prompts)
    first = register_prompts(registry, prompts)
    assert first == {name: f"prompts:/plimsoll-{name}/1"
                     for name in ("answer", "abstain", "refuse", "facts", "system")}
    assert register_prompts(registry, prompts) == first  # same content: same versions

    answer = prompts / "answer.md"
    answer.write_text(answer.read_text().replace("Sources:", "References:"))
    second = register_prompts(registry, prompts)
    assert second == {**first, "answer": "prompts:/plimsoll-answer/2"}
    loaded = registry.client.load_prompt("prompts:/plimsoll-answer/2")
    assert "References:" in loaded.template and "---" not in loaded.template  # the body only
    assert loaded.tags["plimsoll.template"].startswith("answer@1.0.0#")
    assert loaded.commit_message.startswith("answer@1.0.0 (answer.md, ")

    # going back to the earlier text finds version 1 again: the content hash is the identity
    answer.write_text((REPO_ROOT / "prompts" / "answer.md").read_text())
    assert register_prompts(registry, prompts) == first


def test_a_store_that_refuses_says_which_and_registers_nothing(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    registry = ModelRegistry("http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(RegistryError) as caught:
        register_prompts(registry, REPO_ROOT / "prompts")
    assert "127.0.0.1:9" in str(caught.value)
