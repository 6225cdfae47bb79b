"""dataset_slice: one partition per manifest in data_manifests/, checked and stored by DVC."""

import dagster as dg

from platform_defs.resources import DataManifests, SliceStorage

GROUP = "datasets"


def slice_check_specs() -> list[dg.AssetCheckSpec]:
    """One blocking check per Great Expectations check group."""
    from plimsoll.datasets.checks import SLICE_CHECKS

    return [dg.AssetCheckSpec(spec.name, asset="dataset_slice", blocking=True,
                              description=spec.description) for spec in SLICE_CHECKS]


def build_dataset_slice(slice_names: list[str]) -> dg.AssetsDefinition:
    """The dataset_slice asset, partitioned by the slices declared in data_manifests/."""

    @dg.asset(
        name="dataset_slice",
        group_name=GROUP,
        partitions_def=dg.StaticPartitionsDefinition(slice_names),
        check_specs=slice_check_specs(),
        kinds={"parquet", "dvc"},
        code_version="1",
    )
    def dataset_slice(context: dg.AssetExecutionContext, manifests: DataManifests,
                      slice_storage: SliceStorage) -> dg.MaterializeResult:
        """A versioned, validated slice of training and retrieval data, pinned by content hash."""
        from plimsoll.datasets.manifests import load_manifest, manifest_digest
        from plimsoll.datasets.slices import build_slice
        from plimsoll.datasets.validation import validate_slice

        manifest = load_manifest(manifests.manifest_path(context.partition_key))
        table = build_slice(manifest)
        outcomes = validate_slice(table.frame, manifest)
        passed = all(outcome.passed for outcome in outcomes)
        metadata: dict[str, object] = {
            "content_hash": table.content_hash,
            "row_count": dg.MetadataValue.int(table.row_count),
            "manifest_digest": manifest_digest(manifest),
            "classification": manifest.classification.value,
            "owner": manifest.owner,
            "ttl_days": manifest.ttl_days,
            "schema_version": manifest.schema_version,
            "source": manifest.source.kind,
            "published": passed,
            "preview": dg.MetadataValue.md(
                table.frame.head(5)[["id", "title"]].to_markdown(index=False)),
        }
        if passed:
            published = slice_storage.store().publish(table)
            metadata["dvc_md5"] = published.dvc_md5
            metadata["dvc_pointer"] = dg.MetadataValue.path(str(published.pointer))
            context.log.info(f"published {manifest.name} ({table.row_count} rows, "
                             f"{table.content_hash[:12]}) to {slice_storage.remote_url}")
        else:
            failures = "; ".join(o.message for o in outcomes if not o.passed)
            context.log.error(f"slice {manifest.name} failed its checks and was not published "
                              f"(the last published version stays current): {failures}")
        return dg.MaterializeResult(
            data_version=dg.DataVersion(table.content_hash),
            metadata=metadata,
            check_results=[
                dg.AssetCheckResult(
                    check_name=outcome.spec.name,
                    passed=outcome.passed,
                    severity=dg.AssetCheckSeverity.ERROR,
                    description=outcome.message,
                    metadata={
                        "failing_rows": dg.MetadataValue.int(outcome.failing_count),
                        "rows": dg.MetadataValue.int(outcome.row_count),
                        "sample_failing_ids": dg.MetadataValue.json(
                            list(outcome.sample_failing_ids)),
                        "source_file": str(manifest.source_path or manifest.manifest_path),
                        "fix": outcome.spec.fix,
                    })
                for outcome in outcomes
            ],
        )

    return dataset_slice
