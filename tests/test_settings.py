"""The one settings object: every default once, project paths resolved in the project folder."""

from pathlib import Path

from plimsoll.common.home import HomeLayout
from plimsoll.common.settings import MODEL_NAME, Settings


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    (project / "policies").mkdir(parents=True)
    (project / "policies" / "slos.yaml").write_text("version: 1\nmodel: m\n")
    return project


def test_defaults_resolve_in_the_project_folder_not_the_working_directory(tmp_path,
                                                                          monkeypatch):
    project = _project(tmp_path)
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({"PLIMSOLL_PROJECT_DIR": str(project)})
    assert settings.project_dir == project
    assert settings.policy == project / "policies" / "slos.yaml"
    assert settings.manifests == project / "data_manifests"
    assert settings.evalset == project / "evalsets" / "python_docs_ci.jsonl"
    assert settings.home == project / ".plimsoll"
    assert settings.tracking_uri == HomeLayout(project / ".plimsoll").mlflow_tracking_uri
    assert settings.tracking_uri_source == "PLIMSOLL_HOME"
    assert settings.model_name == MODEL_NAME


def test_variables_override_and_relative_ones_stay_in_the_project(tmp_path):
    project = _project(tmp_path)
    elsewhere = tmp_path / "policy.yaml"
    settings = Settings.from_env({"PLIMSOLL_PROJECT_DIR": str(project),
                                  "PLIMSOLL_POLICY": str(elsewhere),
                                  "PLIMSOLL_EVALSET": "evalsets/other.jsonl",
                                  "PLIMSOLL_HOME": str(tmp_path / "home"),
                                  "MLFLOW_TRACKING_URI": "http://mlflow.example:5000"})
    assert settings.policy == elsewhere
    assert settings.evalset == project / "evalsets" / "other.jsonl"
    assert settings.home == tmp_path / "home"
    assert (settings.tracking_uri, settings.tracking_uri_source) == (
        "http://mlflow.example:5000", "$MLFLOW_TRACKING_URI")


def test_arguments_win_over_the_environment(tmp_path):
    project = _project(tmp_path)
    settings = Settings.from_env({"PLIMSOLL_PROJECT_DIR": str(project),
                                  "PLIMSOLL_HOME": str(tmp_path / "env-home"),
                                  "MLFLOW_TRACKING_URI": "http://env:5000"},
                                 home=str(tmp_path / "flag-home"),
                                 tracking_uri="sqlite:////tmp/flag.db")
    assert settings.home == tmp_path / "flag-home"
    assert (settings.tracking_uri, settings.tracking_uri_source) == (
        "sqlite:////tmp/flag.db", "--tracking-uri")


def test_reading_settings_changes_nothing_on_disk_or_in_the_environment(tmp_path,
                                                                        monkeypatch):
    import os

    project = _project(tmp_path)
    monkeypatch.setenv("PLIMSOLL_PROJECT_DIR", str(project))
    before = dict(os.environ)
    Settings.from_env()
    assert dict(os.environ) == before
    assert sorted(p.name for p in project.iterdir()) == ["policies"]
