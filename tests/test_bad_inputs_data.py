"""Bad data files, read as a user would feed them: each is a clear error, and nothing changes.

Every case names the exception a user gets, and text the message must hold: where (the
line, row or field) and what to do. Source cases also check that the slice published
before the failed attempt is still the one published after it.
"""

import codecs
import gzip
import io
import json

import pytest
from conftest import FAQ_ROWS, write_jsonl, write_manifest

from plimsoll.common.errors import ManifestError, SliceDataError
from plimsoll.datasets.manifests import load_manifest
from plimsoll.datasets.slices import build_slice
from plimsoll.datasets.store import SliceStore
from plimsoll.evaluation.evalsets import EvalSetError, load_evalset

GOOD_LINE = '{"id": "a", "text": "fine"}\n'
CSV_HEADER = "id,title,text\n"


def _parquet(**columns) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.table(columns), buffer)
    return buffer.getvalue()


def _parquet_with_repeated_column() -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    table = pa.Table.from_arrays([pa.array(["a"]), pa.array(["x"]), pa.array(["y"])],
                                 names=["id", "text", "text"])
    pq.write_table(table, buffer)
    return buffer.getvalue()


SOURCE_CASES = [
    # encodings and byte-order marks
    pytest.param("jsonl", GOOD_LINE.encode("utf-16"), ["UTF-16-LE", "iconv"], id="jsonl-utf16-bom"),
    pytest.param("jsonl", GOOD_LINE.encode("utf-16-le"), ["NUL byte", "line 1", "UTF-8"],
                 id="jsonl-utf16-no-bom"),
    pytest.param("jsonl", codecs.BOM_UTF32_LE + GOOD_LINE.encode("utf-32-le"),
                 ["UTF-32-LE", "iconv"], id="jsonl-utf32-bom"),
    pytest.param("csv", (CSV_HEADER + "a,t,x\n").encode("utf-16"), ["UTF-16-LE"],
                 id="csv-utf16-excel-unicode-text"),
    pytest.param("jsonl", (GOOD_LINE + '{"id": "b", "text": "caf\xe9"}\n').encode("latin-1"),
                 ["not valid UTF-8", "0xe9", "line 2", "iconv"], id="jsonl-latin1"),
    # not what the extension says
    pytest.param("jsonl", gzip.compress(GOOD_LINE.encode()), ["gzip", "decompress"],
                 id="jsonl-gzipped"),
    pytest.param("jsonl", _parquet(id=["a"], text=["x"]), ["Parquet", "source.kind: parquet"],
                 id="jsonl-is-parquet"),
    pytest.param("csv", b"PK\x03\x04" + bytes(200), ["ZIP", "CSV UTF-8"], id="csv-is-xlsx"),
    pytest.param("csv", CSV_HEADER.encode() + b"a,t,\x00\x01\x02\xff\n", ["NUL byte", "line 2"],
                 id="csv-binary"),
    pytest.param("parquet", (CSV_HEADER + "a,t,x\n").encode(), ["not a readable Parquet"],
                 id="parquet-is-csv"),
    pytest.param("parquet", _parquet(id=["a"], text=["x"])[:-40], ["not a readable Parquet"],
                 id="parquet-truncated"),
    # JSON that parses but is ambiguous, or is not one object per line
    pytest.param("jsonl", b'{"id": "a", "text": "x", "text": "y"}\n',
                 ["line 1", "key 'text' appears twice"], id="jsonl-duplicate-key"),
    pytest.param("jsonl", b'{"id": "a", "text": "x", "meta": {"k": 1, "k": 2}}\n',
                 ["line 1", "key 'k' appears twice"], id="jsonl-duplicate-nested-key"),
    pytest.param("jsonl", (GOOD_LINE + '{"id": "b", "text": NaN}\n').encode(),
                 ["line 2", "NaN is not a JSON number", "null"], id="jsonl-nan"),
    pytest.param("jsonl", b'{"id": "a", "text": "x", "score": -Infinity}\n',
                 ["line 1", "-Infinity"], id="jsonl-infinity"),
    pytest.param("jsonl", b'{"id": "a", "text": "x", "score": 1e999}\n',
                 ["line 1", "overflows to infinity"], id="jsonl-overflow"),
    pytest.param("jsonl", (GOOD_LINE + '["b", "text"]\n').encode(),
                 ["line 2 is a JSON array, not an object"], id="jsonl-array-line"),
    pytest.param("jsonl", (GOOD_LINE + '"just a string"\n').encode(),
                 ["line 2 is a JSON string, not an object"], id="jsonl-string-line"),
    pytest.param("jsonl", (GOOD_LINE + "17\n").encode(), ["line 2 is a JSON number"],
                 id="jsonl-number-line"),
    pytest.param("jsonl", (GOOD_LINE + GOOD_LINE + "{oops\n").encode(),
                 ["line 3 is not valid JSON", "column"], id="jsonl-syntax"),
    pytest.param("jsonl", b'{"id": "a", "text": "x"} {"id": "b", "text": "y"}\n',
                 ["line 1 is not valid JSON", "Extra data"], id="jsonl-two-objects-one-line"),
    pytest.param("jsonl", b"[" * 100_000 + b"]" * 100_000 + b"\n", ["line 1", "nested too deeply"],
                 id="jsonl-nested-too-deeply"),
    pytest.param("jsonl", b'{"id": "a", "text": "x", "n": ' + b"9" * 5000 + b"}\n",
                 ["line 1", "digits"], id="jsonl-giant-integer"),
    # type confusion
    pytest.param("jsonl", b'{"id": "a", "text": 42}\n', ["line 1", "'text' is a number", "quotes"],
                 id="jsonl-number-as-text"),
    pytest.param("jsonl", b'{"id": "a", "text": true}\n', ["line 1", "'text' is a boolean"],
                 id="jsonl-boolean-as-text"),
    pytest.param("jsonl", b'{"id": "a", "text": ["one", "two"]}\n', ["'text' is an array"],
                 id="jsonl-list-as-text"),
    pytest.param("jsonl", b'{"id": "a", "text": "x", "title": {"t": 1}}\n',
                 ["line 1", "'title' is an object"], id="jsonl-object-as-title"),
    pytest.param("jsonl", (GOOD_LINE + '{"id": 2.5, "text": "x"}\n').encode(),
                 ["line 2", "'id' is a number"], id="jsonl-float-id"),
    pytest.param("jsonl", b'{"id": false, "text": "x"}\n', ["'id' is a boolean"],
                 id="jsonl-boolean-id"),
    pytest.param("parquet", _parquet(id=["a", "b"], text=[1, 2]), ["row 1", "'text' is a number"],
                 id="parquet-int-text-column"),
    pytest.param("parquet", _parquet(id=["a"], text=[["x", "y"]]), ["row 1", "'text' is an array"],
                 id="parquet-list-text-column"),
    pytest.param("parquet", _parquet(id=[1.0], text=["x"]), ["row 1", "'id' is a number"],
                 id="parquet-float-id-column"),
    pytest.param("parquet", _parquet(id=["a"], text=[float("nan")]), ["'text' is a NaN"],
                 id="parquet-nan-text"),
    pytest.param("parquet", _parquet_with_repeated_column(), ["['text']", "more than once"],
                 id="parquet-repeated-column"),
    # CSV rows that do not line up with the header
    pytest.param("csv", (CSV_HEADER + "a,Rollback,fine\nb,Regex,use re.split, then join\n"
                         ).encode(), ["line 3 has 4 fields", "header (line 1) has 3",
                                      "quote the field"], id="csv-unquoted-comma"),
    pytest.param("csv", (CSV_HEADER + "a,Rollback\n").encode(), ["line 2 has 2 fields", "quote"],
                 id="csv-missing-field"),
    pytest.param("csv", b'id,title,text\na,"two\nlines",ok\nb,t,x,extra\n',
                 ["line 4 has 4 fields"], id="csv-ragged-after-multiline-field"),
    pytest.param("csv", b"id,text,text\na,x,y\n", ["'text' appears twice in the header"],
                 id="csv-duplicate-header"),
    pytest.param("csv", b"id,,text\na,x,y\n", ["column 2 of the header", "has no name"],
                 id="csv-empty-header-name"),
    pytest.param("csv", (CSV_HEADER + 'a,t,"never closed\nb,t,x\n').encode(),
                 ["not valid CSV", "close every quoted field"], id="csv-unclosed-quote"),
    pytest.param("csv", (CSV_HEADER + 'a,t,"quoted"tail\n').encode(), ["line 2", "not valid CSV"],
                 id="csv-text-after-closing-quote"),
    pytest.param("csv", b"id;title;text\na;t;x\n", ["delimited", "comma-separated"],
                 id="csv-semicolons"),
    # empty
    pytest.param("jsonl", b"", ["empty slice"], id="jsonl-empty"),
    pytest.param("csv", CSV_HEADER.encode(), ["empty slice"], id="csv-header-only"),
    pytest.param("csv", b"", ["empty slice"], id="csv-empty"),
]


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A store holding a good version of slice 's', published before any bad attempt."""
    root = tmp_path_factory.mktemp("published")
    write_jsonl(root / "m" / "sources" / "s.jsonl", FAQ_ROWS)
    store = SliceStore(root / "dvc", str(root / "remote"))
    store.publish(build_slice(load_manifest(write_manifest(root / "m", "s"))))
    return store


@pytest.mark.parametrize(("kind", "content", "expected"), SOURCE_CASES)
def test_bad_slice_source_is_refused_and_the_published_slice_stays(
        tmp_path, published, kind, content, expected):
    source = tmp_path / "sources" / f"s.{kind}"
    source.parent.mkdir(parents=True)
    source.write_bytes(content)
    manifest = load_manifest(write_manifest(tmp_path, "s", min_rows=1, source={
        "kind": kind, "path": f"sources/s.{kind}"}))
    before = published.published("s")

    with pytest.raises(SliceDataError) as caught:
        published.publish(build_slice(manifest))  # what dataset_slice does

    error = caught.value
    assert error.file == str(source)
    assert error.fix
    message = str(error)
    for part in expected:
        assert part in message
    after = published.published("s")
    assert (after.dvc_md5, after.content_hash, after.row_count) == (
        before.dvc_md5, before.content_hash, before.row_count)


@pytest.mark.parametrize(("kind", "content"), [
    pytest.param("jsonl", codecs.BOM_UTF8 + GOOD_LINE.encode(), id="jsonl-utf8-bom"),
    pytest.param("csv", codecs.BOM_UTF8 + (CSV_HEADER + "a,t,fine\n").encode(), id="csv-utf8-bom"),
    pytest.param("jsonl", b'{"id": "a", "text": "fine\xe2\x80\xa8still the same line"}\r\n',
                 id="jsonl-line-separator-in-string-and-crlf"),
    pytest.param("jsonl", b'{"id": 7, "text": "fine"}\n', id="jsonl-integer-id"),
    pytest.param("csv", (CSV_HEADER + 'a,t,"fine, with a quoted comma"\n').encode(),
                 id="csv-quoted-comma"),
])
def test_unambiguous_inputs_are_read(tmp_path, kind, content):
    """A UTF-8 byte-order mark is dropped, whole-number ids become text, quoting works."""
    source = tmp_path / "sources" / f"s.{kind}"
    source.parent.mkdir(parents=True)
    source.write_bytes(content)
    table = build_slice(load_manifest(write_manifest(tmp_path, "s", min_rows=1, source={
        "kind": kind, "path": f"sources/s.{kind}"})))
    assert table.row_count == 1
    assert table.frame["id"][0] in ("a", "7")
    assert table.frame["text"][0].startswith("fine")


MANIFEST = """name: s
description: test slice
owner: tests@plimsoll
source:
  kind: jsonl
  path: sources/s.jsonl
schema_version: 1
classification: internal
ttl_days: 30
"""

MANIFEST_CASES = [
    pytest.param(MANIFEST + "ttl_days: 60\n", ["'ttl_days' is given twice (lines 9 and 10)",
                                                "keep one"], id="duplicate-key"),
    pytest.param(MANIFEST.replace("  path: sources/s.jsonl\n",
                                  "  path: sources/s.jsonl\n  kind: csv\n"),
                 ["'kind' is given twice"], id="duplicate-nested-key"),
    pytest.param(MANIFEST.replace("  kind: jsonl\n  path: sources/s.jsonl\n",
                                  "  {kind: jsonl, path: sources/s.jsonl, kind: csv}\n"),
                 ["'kind' is given twice (lines 5 and 5)"], id="duplicate-key-on-one-line"),
    pytest.param(MANIFEST.encode("utf-16"), ["UTF-16-LE", "iconv"], id="utf16"),
    pytest.param(MANIFEST.encode() + b"\x00\x01", ["NUL byte"], id="binary"),
    pytest.param(b"", ["the manifest is empty"], id="empty"),
    pytest.param(MANIFEST + "  bad indent: [\n", ["not valid YAML"], id="syntax"),
    pytest.param(MANIFEST.replace("ttl_days: 30", 'ttl_days: "30"'),
                 ["field 'ttl_days'", "got a string ('30')", "whole number"], id="number-quoted"),
    pytest.param(MANIFEST.replace("ttl_days: 30", "ttl_days: 30.5"),
                 ["field 'ttl_days'", "got a decimal number (30.5)"], id="fractional-number"),
    pytest.param(MANIFEST.replace("schema_version: 1", "schema_version: true"),
                 ["field 'schema_version'", "got a boolean"], id="boolean-as-number"),
    pytest.param(MANIFEST.replace("owner: tests@plimsoll", "owner: no"),
                 ["field 'owner'", "got a boolean (False)", "in quotes"], id="yaml-no-is-boolean"),
    pytest.param(MANIFEST.replace("description: test slice", "description: 2024-01-01"),
                 ["field 'description'", "got a date"], id="yaml-date-as-text"),
    pytest.param(MANIFEST.replace("owner: tests@plimsoll", "owner: 1234"),
                 ["field 'owner'", "got a whole number (1234)"], id="number-as-text"),
    pytest.param(MANIFEST.replace("  kind: jsonl\n  path: sources/s.jsonl\n",
                                  "  kind: stdlib_docstrings\n  modules: json\n"),
                 ["field 'source.modules'", "got a string ('json')", "YAML list"],
                 id="string-where-list-expected"),
    pytest.param(MANIFEST.replace("  kind: jsonl\n  path: sources/s.jsonl\n",
                                  "  kind: stdlib_docstrings\n  modules: [json, 7]\n"),
                 ["field 'source.modules.1'", "got a whole number (7)"],
                 id="number-in-module-list"),
    pytest.param(MANIFEST + "min_text_chars: 50\nmax_text_chars: 10\n",
                 ["min_text_chars (50) is above max_text_chars (10)"], id="bounds-reversed"),
    pytest.param(MANIFEST + "text_field: body\nid_field: body\n",
                 ["text_field and id_field are both 'body'"], id="same-field-twice"),
    pytest.param("- name: s\n", ["YAML mapping"], id="a-list"),
]


@pytest.mark.parametrize(("text", "expected"), MANIFEST_CASES)
def test_bad_manifest_is_refused(tmp_path, text, expected):
    write_jsonl(tmp_path / "sources" / "s.jsonl", FAQ_ROWS)
    path = tmp_path / "s.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    assert caught.value.file == str(path) and caught.value.fix
    for part in expected:
        assert part in str(caught.value)


def test_manifest_with_utf8_bom_and_merge_keys_is_read(tmp_path):
    write_jsonl(tmp_path / "sources" / "s.jsonl", FAQ_ROWS)
    path = tmp_path / "s.yaml"
    path.write_bytes(codecs.BOM_UTF8 + MANIFEST.encode())
    assert load_manifest(path).ttl_days == 30


GOOD_QUESTION = {"qid": "q1", "question": "How do I assert?", "answerable": True,
                 "gold_doc_ids": ["pydoc:assert"], "answer_hint": ""}


def _question(**changes) -> str:
    return json.dumps({**GOOD_QUESTION, "qid": "q2", **changes})


EVALSET_CASES = [
    pytest.param(_question(gold_doc_ids="pydoc:assert"),
                 ["line 2", "gold_doc_ids", "JSON string", '["pydoc:assert"]'],
                 id="gold-ids-as-string"),
    pytest.param(_question(gold_doc_ids=[1, 2]), ["line 2", "gold_doc_ids", "array of doc id"],
                 id="gold-ids-numbers"),
    pytest.param(_question(gold_doc_ids=[""]), ["line 2", "gold_doc_ids"], id="gold-id-blank"),
    pytest.param(_question(answerable="false", gold_doc_ids=[]),
                 ["line 2", "answerable", "JSON string", "true or false, without quotes"],
                 id="answerable-as-string"),
    pytest.param(_question(answerable=1), ["line 2", "answerable", "JSON number"],
                 id="answerable-as-number"),
    pytest.param(_question(qid=2), ["line 2", "qid", "JSON number", "in quotes"],
                 id="qid-as-number"),
    pytest.param(_question(question=["How", "?"]), ["line 2", "question", "JSON array"],
                 id="question-as-list"),
    pytest.param(_question(question="   "), ["line 2", "'question' is blank"],
                 id="question-blank"),
    pytest.param(_question(answer_hint=None), ["line 2", "answer_hint", "JSON null"],
                 id="hint-null"),
    pytest.param('["q2", "How?", true]', ["line 2 is a JSON array, not an object"],
                 id="row-is-array"),
    pytest.param('"How do I assert?"', ["line 2 is a JSON string"], id="row-is-string"),
    pytest.param("42", ["line 2 is a JSON number"], id="row-is-number"),
    pytest.param("null", ["line 2 is a JSON null"], id="row-is-null"),
    pytest.param(_question()[:-1] + ', "qid": "q3"}', ["line 2", "key 'qid' appears twice"],
                 id="duplicate-key"),
    pytest.param(_question()[:-1] + ', "score": NaN}', ["line 2", "NaN"], id="nan"),
    pytest.param('{"qid": "q2", oops}', ["line 2 is not valid JSON"], id="syntax"),
    pytest.param(json.dumps(GOOD_QUESTION), ["duplicate qid q1"], id="duplicate-qid"),
]


@pytest.mark.parametrize(("second_line", "expected"), EVALSET_CASES)
def test_bad_eval_set_row_is_refused(tmp_path, second_line, expected):
    path = tmp_path / "set.jsonl"
    path.write_text(json.dumps(GOOD_QUESTION) + "\n" + second_line + "\n", encoding="utf-8")
    with pytest.raises(EvalSetError) as caught:
        load_evalset(path)
    assert caught.value.file == str(path) and caught.value.fix
    for part in expected:
        assert part in str(caught.value)


@pytest.mark.parametrize(("content", "expected"), [
    pytest.param((json.dumps(GOOD_QUESTION) + "\n").encode("utf-16"), "UTF-16-LE", id="utf16"),
    pytest.param(b"\n\n", "eval set is empty", id="empty"),
    pytest.param(json.dumps(GOOD_QUESTION).encode() + b"\n\xff\n", "not valid UTF-8", id="bytes"),
])
def test_bad_eval_set_file_is_refused(tmp_path, content, expected):
    path = tmp_path / "set.jsonl"
    path.write_bytes(content)
    with pytest.raises(EvalSetError, match=expected) as caught:
        load_evalset(path)
    assert caught.value.file == str(path) and caught.value.fix


@pytest.mark.parametrize("limit", [-1, 0, True])
def test_a_limit_that_is_not_a_positive_count_is_refused(tmp_path, limit):
    """[:-1] would quietly evaluate all but one question and report a full run."""
    path = tmp_path / "set.jsonl"
    path.write_text(json.dumps(GOOD_QUESTION) + "\n", encoding="utf-8")
    with pytest.raises(EvalSetError, match=f"a limit of {limit} questions") as caught:
        load_evalset(path).limited(limit)
    assert caught.value.field == "limit"
    assert load_evalset(path).limited(None).questions == load_evalset(path).limited(5).questions


def test_dataset_slice_with_a_ragged_csv_row_fails_and_keeps_the_published_version(
        home, manifests):
    """The reported case, through Dagster: the text cut at an unquoted comma is never published."""
    import dagster as dg
    from conftest import QUIET

    from platform_defs.definitions import defs
    from plimsoll.common.home import HomeLayout

    definitions = defs()
    job = definitions.resolve_job_def("dataset_slices_job")
    with dg.instance_for_test() as instance:
        assert job.execute_in_process(partition_key="faq", instance=instance,
                                      run_config=QUIET).success
        store = SliceStore(HomeLayout(home).dvc_workspace, "unused")
        before = store.published("faq")
        source = manifests / "sources" / "faq.csv"
        source.write_text(CSV_HEADER + "doc-0,Rollback,Run plimsoll rollback\n"
                          "doc-1,Regex,Use re.split, it returns a list\n", encoding="utf-8")
        write_manifest(manifests, "faq", source={"kind": "csv", "path": "sources/faq.csv"})
        result = job.execute_in_process(partition_key="faq", instance=instance,
                                        run_config=QUIET, raise_on_error=False)

    assert not result.success
    assert result.asset_materializations_for_node("dataset_slice") == []
    failure = result.failure_data_for_node("dataset_slice").error
    message = failure.message + "".join(c.message for c in [failure.cause] if c)
    assert str(source) in message and "line 3 has 4 fields" in message
    assert "quote the field" in message
    after = store.published("faq")
    assert (after.dvc_md5, after.content_hash, after.row_count) == (
        before.dvc_md5, before.content_hash, before.row_count)
