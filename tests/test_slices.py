import pandas as pd
import pytest
from conftest import FAQ_ROWS, write_jsonl, write_manifest

from plimsoll.common.errors import SliceDataError
from plimsoll.datasets.manifests import load_manifest
from plimsoll.datasets.slices import build_slice, normalise_text


def test_normalisation_nfc_whitespace_and_blank_lines():
    decomposed = "Cafe\u0301  \t menu\r\n\r\n\r\n\r\nsecond   line  "
    assert normalise_text(decomposed) == "Caf\u00e9 menu\n\nsecond line"
    assert normalise_text("   \n\t ") is None
    assert normalise_text(None) is None


def test_content_hash_ignores_row_order_but_not_content(tmp_path):
    write_jsonl(tmp_path / "sources" / "s.jsonl", FAQ_ROWS)
    manifest = load_manifest(write_manifest(tmp_path, "s"))
    first = build_slice(manifest)
    write_jsonl(tmp_path / "sources" / "s.jsonl", list(reversed(FAQ_ROWS)))
    assert build_slice(manifest).content_hash == first.content_hash
    changed = [dict(FAQ_ROWS[0], text=FAQ_ROWS[0]["text"] + " Extra."), *FAQ_ROWS[1:]]
    write_jsonl(tmp_path / "sources" / "s.jsonl", changed)
    assert build_slice(manifest).content_hash != first.content_hash
    assert list(first.frame.columns) == ["id", "title", "text", "slice", "classification"]
    assert set(first.frame["classification"]) == {"internal"}


def test_reference_sources_have_stable_ids():
    from conftest import REPO_ROOT

    manifest = load_manifest(REPO_ROOT / "data_manifests" / "python_help_topics.yaml")
    table = build_slice(manifest)
    assert table.row_count > 50
    assert table.frame["id"].str.startswith("pydoc:").all()
    assert build_slice(manifest).content_hash == table.content_hash


def test_stdlib_docstrings_for_named_modules(tmp_path):
    path = write_manifest(tmp_path, "std", source={"kind": "stdlib_docstrings",
                                                   "modules": ["textwrap", "json"]})
    table = build_slice(load_manifest(path))
    assert "stdlib:textwrap.dedent" in set(table.frame["id"])
    assert "stdlib:json" in set(table.frame["id"])


def test_empty_slice_is_refused(tmp_path):
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources" / "s.jsonl").write_text("\n\n")
    manifest = load_manifest(write_manifest(tmp_path, "s"))
    with pytest.raises(SliceDataError, match="empty slice") as caught:
        build_slice(manifest)
    assert caught.value.file.endswith("s.jsonl") and caught.value.fix


def test_non_utf8_file_names_offset_and_fix(tmp_path):
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources" / "s.jsonl").write_bytes(
        b'{"id": "a", "text": "ok"}\n{"id": "b", "text": "caf\xe9"}\n')
    manifest = load_manifest(write_manifest(tmp_path, "s"))
    with pytest.raises(SliceDataError) as caught:
        build_slice(manifest)
    message = str(caught.value)
    assert "not valid UTF-8" in message and "line 2" in message and "0xe9" in message
    assert caught.value.field == "source.path" and "iconv" in caught.value.fix


def test_missing_text_field_names_the_manifest_field(tmp_path):
    write_jsonl(tmp_path / "sources" / "s.jsonl", [{"id": "a", "body": "x"}])
    manifest = load_manifest(write_manifest(tmp_path, "s"))
    with pytest.raises(SliceDataError) as caught:
        build_slice(manifest)
    assert caught.value.field == "text_field" and "body" in str(caught.value)


def test_invalid_json_line(tmp_path):
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources" / "s.jsonl").write_text('{"id": "a", "text": "x"}\n{oops\n')
    with pytest.raises(SliceDataError, match="line 2 is not valid JSON"):
        build_slice(load_manifest(write_manifest(tmp_path, "s")))


def test_csv_and_parquet_sources(tmp_path):
    (tmp_path / "sources").mkdir()
    pd.DataFrame(FAQ_ROWS).to_csv(tmp_path / "sources" / "c.csv", index=False)
    pd.DataFrame(FAQ_ROWS).to_parquet(tmp_path / "sources" / "p.parquet")
    from_csv = build_slice(load_manifest(write_manifest(
        tmp_path, "c", source={"kind": "csv", "path": "sources/c.csv"})))
    from_parquet = build_slice(load_manifest(write_manifest(
        tmp_path, "p", source={"kind": "parquet", "path": "sources/p.parquet"})))
    assert from_csv.row_count == from_parquet.row_count == len(FAQ_ROWS)
    assert list(from_csv.frame["text"]) == list(from_parquet.frame["text"])
