"""The one Definitions object of the Plimsoll code location (workspace.yaml points here)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from assets.dataset_slices import build_dataset_slice
from assets.embeddings_index import build_embeddings_index
from platform_defs.profiles import active_profile, resources_for
from plimsoll.manifests import slice_names


@dg.definitions
def defs() -> dg.Definitions:
    """Build the code location for the active profile (read now, not at import)."""
    profile = active_profile()
    resources = resources_for(profile)
    names = slice_names(Path(resources["manifests"].directory))
    dataset_slice = build_dataset_slice(names)
    embeddings_index = build_embeddings_index(names)
    return dg.Definitions(
        assets=[dataset_slice, embeddings_index],
        jobs=[
            dg.define_asset_job("dataset_slices_job", selection=[dataset_slice.key],
                                description="Load, check and publish one dataset slice."),
            dg.define_asset_job("embeddings_index_job", selection=[embeddings_index.key],
                                description="Build (or reuse) the index snapshot."),
        ],
        resources=resources,
        metadata={"profile": profile},
    )
