"""The blocking checks on a dataset slice, declared: each one's name, what it protects, the fix.

Plain data with no heavy import, so the code location can declare one Dagster check per
entry without loading pandas or Great Expectations; validation.py runs them.
"""

from __future__ import annotations

from dataclasses import dataclass


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
