"""dataset_slice: one partition per manifest in data_manifests/, checked and stored by DVC."""

from typing import TYPE_CHECKING

import dagster as dg

from platform_defs.resources import DataManifests, PromotionSettings, SliceStorage

if TYPE_CHECKING:
    from plimsoll.datasets.validation import CheckOutcome

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
                      slice_storage: SliceStorage,
                      promotion: PromotionSettings) -> dg.MaterializeResult:
        """A versioned, validated slice of training and retrieval data, pinned by content hash."""
        from plimsoll.datasets.check_history import failure_summary
        from plimsoll.datasets.manifests import load_manifest, manifest_digest
        from plimsoll.datasets.slices import build_slice
        from plimsoll.datasets.validation import validate_slice

        manifest = load_manifest(manifests.manifest_path(context.partition_key))
        table = build_slice(manifest)
        outcomes = validate_slice(table.frame, manifest)
        passed = all(outcome.passed for outcome in outcomes)
        recorded = _record_check_run(context, promotion, manifest.name, table.content_hash,
                                     outcomes)
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
            "checks_recorded": recorded,
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
            context.log.error(f"slice {manifest.name} failed its checks and was not published "
                              "(the last published version stays current): "
                              f"{failure_summary(outcomes)}")
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


def _record_check_run(context: dg.AssetExecutionContext, promotion: PromotionSettings,
                      slice_name: str, content_hash: str, outcomes: "list[CheckOutcome]") -> bool:
    """Append this run's outcome to the slice check history the gateway reads.

    A store that cannot take it is a warning, not a lost slice: the checks still reach
    Dagster, and a passing slice is still published.
    """
    from plimsoll.common.sql import StoreError

    try:
        history = promotion.check_history()
        try:
            history.record(slice_name, content_hash, outcomes)
        finally:
            history.close()
    except StoreError as exc:
        context.log.warning(f"the checks of slice {slice_name} were not recorded in the slice "
                            f"check history, so the gateway cannot see them: {exc}")
        return False
    return True
