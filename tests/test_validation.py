from conftest import FAQ_ROWS, write_jsonl, write_manifest

from plimsoll.datasets.manifests import load_manifest
from plimsoll.datasets.slices import build_slice
from plimsoll.datasets.validation import validate_slice


def _outcomes(tmp_path, rows, **manifest_overrides):
    write_jsonl(tmp_path / "sources" / "s.jsonl", rows)
    manifest = load_manifest(write_manifest(tmp_path, "s", **manifest_overrides))
    return {o.spec.name: o for o in validate_slice(build_slice(manifest).frame, manifest)}


def test_clean_slice_passes_every_check(tmp_path):
    outcomes = _outcomes(tmp_path, FAQ_ROWS)
    assert all(o.passed for o in outcomes.values()), [o.message for o in outcomes.values()]
    assert set(outcomes) == {"schema_and_types", "text_not_null", "ids_unique",
                             "text_length_bounds", "classification_allowed", "min_row_count"}


def test_duplicate_ids_fail_with_counts_and_sample_ids(tmp_path):
    rows = [*FAQ_ROWS, dict(FAQ_ROWS[1], text="another text with the same id")]
    outcome = _outcomes(tmp_path, rows)["ids_unique"]
    assert not outcome.passed
    assert outcome.failing_count == 2
    assert outcome.sample_failing_ids == ("doc-1", "doc-1")
    assert "make ids unique" in outcome.message


def test_rows_without_text_fail_non_null_text(tmp_path):
    rows = [*FAQ_ROWS, {"id": "blank", "text": "   "}, {"id": "null", "text": None}]
    outcomes = _outcomes(tmp_path, rows)
    assert not outcomes["text_not_null"].passed
    assert set(outcomes["text_not_null"].sample_failing_ids) == {"blank", "null"}
    assert outcomes["ids_unique"].passed


def test_rows_without_id_fail_schema_check(tmp_path):
    outcome = _outcomes(tmp_path, [*FAQ_ROWS, {"id": None, "text": "orphan"}])[
        "schema_and_types"]
    assert not outcome.passed and outcome.failing_count == 1
    assert outcome.sample_failing_ids[0].endswith("no id>")


def test_length_bounds_and_minimum_rows(tmp_path):
    outcomes = _outcomes(tmp_path, FAQ_ROWS, max_text_chars=100, min_rows=50)
    assert not outcomes["text_length_bounds"].passed
    assert outcomes["text_length_bounds"].failing_count >= 1
    assert not outcomes["min_row_count"].passed
    assert "observed 6" in outcomes["min_row_count"].message


def test_validating_leaves_the_process_environment_alone(tmp_path, monkeypatch):
    """GX analytics are off in the context's own config, not through os.environ."""
    import os

    from plimsoll.datasets import validation

    monkeypatch.delenv("GX_ANALYTICS_ENABLED", raising=False)
    validation._batch_definition.cache_clear()
    validation._context.cache_clear()
    before = dict(os.environ)
    outcomes = _outcomes(tmp_path, FAQ_ROWS)
    assert dict(os.environ) == before
    assert all(o.passed for o in outcomes.values())
    assert validation._context().variables.analytics_enabled is False


def test_the_declared_checks_are_the_ones_validation_reports(tmp_path):
    from plimsoll.datasets.checks import SLICE_CHECKS

    assert list(_outcomes(tmp_path, FAQ_ROWS)) == [spec.name for spec in SLICE_CHECKS]
