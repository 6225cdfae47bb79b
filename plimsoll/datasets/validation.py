"""Great Expectations suites for dataset slices, as code; results grouped into named checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING

from plimsoll.datasets.checks import SLICE_CHECKS, CheckSpec
from plimsoll.datasets.manifests import Classification, SliceManifest
from plimsoll.datasets.slices import SLICE_COLUMNS

if TYPE_CHECKING:
    import pandas as pd

SAMPLE_SIZE = 10


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
def _context():
    """The in-memory GX context the slice suites run in, made once per process."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    # GX's default ephemeral config, with analytics off in the context's own config rather
    # than through $GX_ANALYTICS_ENABLED, which would change the environment of the process.
    config = DataContextConfig(
        analytics_enabled=False,
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=True))
    context = gx.get_context(project_config=config, mode="ephemeral")
    # Dagster logs carry the outcome; GE's per-metric progress bars would only add noise.
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


@cache
def _batch_definition():
    source = _context().data_sources.add_pandas("plimsoll_slices")
    asset = source.add_dataframe_asset("dataset_slice")
    return asset.add_batch_definition_whole_dataframe("whole_slice")


def validate_slice(frame: pd.DataFrame, manifest: SliceManifest) -> list[CheckOutcome]:
    """Run the slice suite on a frame; one outcome per check in SLICE_CHECKS order."""
    import great_expectations as gx
    import pandas as pd

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
    import pandas as pd

    value = ids.iloc[row]
    return f"<row {row}: no id>" if pd.isna(value) else str(value)
