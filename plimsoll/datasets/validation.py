"""Great Expectations suites for dataset slices, as code; results grouped into named checks."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cache

import pandas as pd

from plimsoll.datasets.manifests import Classification, SliceManifest
from plimsoll.datasets.slices import SLICE_COLUMNS

SAMPLE_SIZE = 10


@dataclass(frozen=True)
class CheckSpec:
    """One blocking check on a slice: its name and what it protects."""

    name: str
    description: str
    column: str | None
    fix: str


SLICE_CHECKS: tuple[CheckSpec, ...] = (
    CheckSpec("schema_and_types", "Columns are exactly id, title, text, slice, classification, "
              "all strings, with an id on every row.", "id",
              "give every row a string id, in the column named by id_field"),
    CheckSpec("text_not_null", "Every row has non-empty text.", "text",
              "fill or drop the rows without text in the column named by text_field"),
    CheckSpec("ids_unique", "Ids are unique within the slice.", "id",
              "make ids unique: drop duplicate rows or fix the id column"),
    CheckSpec("text_length_bounds", "Text length lies within the manifest's min/max_text_chars.",
              "text", "split or drop over-long rows, or change min/max_text_chars"),
    CheckSpec("classification_allowed", "Classification is one of public, internal, "
              "confidential, restricted.", "classification",
              "set classification in the manifest to an allowed value"),
    CheckSpec("min_row_count", "The slice has at least the manifest's min_rows rows.", None,
              "add rows to the source, or lower min_rows in the manifest"),
)


@dataclass(frozen=True)
class CheckOutcome:
    """What one check found: pass/fail, counts and a sample of failing ids."""

    spec: CheckSpec
    passed: bool
    failing_count: int
    row_count: int
    sample_failing_ids: tuple[str, ...] = ()
    details: dict[str, object] = field(default_factory=dict)

    @property
    def message(self) -> str:
        """One line for people."""
        if self.passed:
            return f"{self.spec.name}: passed on {self.row_count} rows"
        if self.failing_count:
            sample = ", ".join(self.sample_failing_ids)
            found = (f"{self.failing_count} of {self.row_count} rows fail "
                     f"(sample ids: {sample})")
        else:
            found = "; ".join(f"{k} observed {v}" for k, v in self.details.items()) or "failed"
        return f"{self.spec.name}: {found}; fix: {self.spec.fix}"


def _expectations(manifest: SliceManifest) -> list[tuple[str, object]]:
    import great_expectations as gx

    e = gx.expectations
    allowed = [c.value for c in Classification]
    return [
        ("schema_and_types", e.ExpectTableColumnsToMatchOrderedList(
            column_list=list(SLICE_COLUMNS))),
        ("schema_and_types", e.ExpectColumnValuesToNotBeNull(column="id")),
        *[("schema_and_types", e.ExpectColumnValuesToBeInTypeList(
            column=column, type_list=["str", "string", "StringDtype", "object"]))
          for column in SLICE_COLUMNS],
        ("text_not_null", e.ExpectColumnValuesToNotBeNull(column="text")),
        ("ids_unique", e.ExpectColumnValuesToBeUnique(column="id")),
        ("text_length_bounds", e.ExpectColumnValueLengthsToBeBetween(
            column="text", min_value=manifest.min_text_chars,
            max_value=manifest.max_text_chars)),
        ("classification_allowed", e.ExpectColumnValuesToBeInSet(
            column="classification", value_set=allowed)),
        ("min_row_count", e.ExpectTableRowCountToBeBetween(min_value=manifest.min_rows)),
    ]


@cache
def _batch_definition():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    # Dagster logs carry the outcome; GE's per-metric progress bars would only add noise.
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas("plimsoll_slices")
    asset = source.add_dataframe_asset("dataset_slice")
    return asset.add_batch_definition_whole_dataframe("whole_slice")


def validate_slice(frame: pd.DataFrame, manifest: SliceManifest) -> list[CheckOutcome]:
    """Run the slice suite on a frame; one outcome per check in SLICE_CHECKS order."""
    import great_expectations as gx

    batch_definition = _batch_definition()
    suite = gx.ExpectationSuite(name=f"dataset_slice.{manifest.name}")
    for check_name, expectation in _expectations(manifest):
        expectation.meta = {"check": check_name}
        suite.add_expectation(expectation)
    # Failing rows come back as positions in the frame, so rows without an id still count.
    positional = frame.reset_index(drop=True)
    batch = batch_definition.get_batch(batch_parameters={"dataframe": positional})
    result = batch.validate(suite, result_format={"result_format": "COMPLETE"})

    failing_rows: dict[str, set[int]] = {spec.name: set() for spec in SLICE_CHECKS}
    failed: dict[str, bool] = dict.fromkeys(failing_rows, False)
    details: dict[str, dict[str, object]] = {name: {} for name in failing_rows}
    for expectation_result in result.results:
        name = expectation_result.expectation_config.meta["check"]
        if expectation_result.success:
            continue
        failed[name] = True
        outcome = expectation_result.result or {}
        for entry in outcome.get("unexpected_index_list") or []:
            failing_rows[name].add(int(entry))
        if "observed_value" in outcome:
            details[name][expectation_result.expectation_config.type] = str(
                outcome["observed_value"])
    ids = positional["id"] if "id" in positional else pd.Series([None] * len(positional))
    outcomes = []
    for spec in SLICE_CHECKS:
        rows = sorted(failing_rows[spec.name])
        sample = tuple(_row_label(ids, row) for row in rows[:SAMPLE_SIZE])
        outcomes.append(CheckOutcome(spec=spec, passed=not failed[spec.name],
                                     failing_count=len(rows), row_count=len(frame),
                                     sample_failing_ids=sample, details=details[spec.name]))
    return outcomes


def _row_label(ids: pd.Series, row: int) -> str:
    value = ids.iloc[row]
    return f"<row {row}: no id>" if pd.isna(value) else str(value)
