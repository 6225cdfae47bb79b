from pathlib import Path

import pytest
from conftest import REPO_ROOT, write_jsonl, write_manifest

from plimsoll.common.errors import ManifestError
from plimsoll.datasets.manifests import load_manifest, manifest_paths


def test_repository_manifests_declare_the_reference_slices():
    manifests = {p.stem: load_manifest(p) for p in manifest_paths(REPO_ROOT / "data_manifests")}
    assert set(manifests) >= {"python_help_topics", "stdlib_docstrings", "example_faq"}
    assert manifests["python_help_topics"].source.kind == "pydoc_topics"
    assert manifests["stdlib_docstrings"].source.kind == "stdlib_docstrings"
    faq = manifests["example_faq"]
    assert faq.source.kind == "jsonl" and faq.source_path.is_file()


def _bad(tmp_path: Path, **overrides) -> ManifestError:
    write_jsonl(tmp_path / "sources" / "s.jsonl", [{"id": "a", "text": "x"}])
    path = write_manifest(tmp_path, "s", **overrides)
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    error = caught.value
    assert error.file == str(path)  # every error names the file...
    assert error.fix  # ...and says what would fix it
    return error


def test_unknown_key_names_the_key(tmp_path):
    error = _bad(tmp_path, colour="blue")
    assert error.field == "colour"
    assert "remove the key" in error.fix


def test_missing_source(tmp_path):
    write_jsonl(tmp_path / "sources" / "s.jsonl", [{"id": "a", "text": "x"}])
    path = write_manifest(tmp_path, "s")
    text = "\n".join(line for line in path.read_text().splitlines()
                     if not line.startswith(("source:", "  kind:", "  path:")))
    path.write_text(text)
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    assert caught.value.field == "source" and caught.value.fix == "add the field"


def test_bad_classification_lists_the_allowed_values(tmp_path):
    error = _bad(tmp_path, classification="top-secret")
    assert error.field == "classification"
    assert "public, internal, confidential, restricted" in error.fix


def test_bad_path(tmp_path):
    error = _bad(tmp_path, source={"kind": "jsonl", "path": "sources/missing.jsonl"})
    assert error.field == "source.path"
    assert "missing.jsonl" in str(error)


def test_file_source_without_path(tmp_path):
    error = _bad(tmp_path, source={"kind": "csv"})
    assert error.field == "source"
    assert "needs a 'path'" in str(error)


def test_name_must_match_file_name(tmp_path):
    error = _bad(tmp_path, name="other")
    assert error.field == "name" and "other.yaml" in error.fix


def test_not_a_mapping(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(ManifestError, match="YAML mapping"):
        load_manifest(path)
