"""Dagster assets and asset checks: thin wrappers that call plimsoll/."""
