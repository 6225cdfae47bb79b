"""`python -m platform_defs.demo`: materialize the reference use case on the embedded defaults.

Runs through the real Dagster instance under $DAGSTER_HOME (default
$PLIMSOLL_HOME/dagster), so every run, check and materialization shows in `dagster dev`.
"""

import argparse
import os
import sys

from plimsoll.common.boundary import debug_requested, run_guarded
from plimsoll.common.home import HomeLayout, resolve_home


def main(argv: list[str] | None = None) -> int:
    """Materialize every dataset slice, then the embeddings index; print what was built."""
    parser = argparse.ArgumentParser(prog="python -m platform_defs.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", nargs="*", default=None,
                        help="slices to materialize (default: every manifest)")
    parser.add_argument("--no-candidate", dest="candidate", action="store_false",
                        help="stop after the index: no fine-tune, eval or registration")
    parser.add_argument("--seed", type=int, default=None,
                        help="fine-tune seed (default: the finetuned_encoder config's)")
    parser.add_argument("--quick", action="store_true",
                        help="CI's candidate: one epoch, no hard-negative mining, no early "
                        "stopping (a few minutes less on 2 cores); the default is the full "
                        "training recipe")
    parser.add_argument("--debug", action="store_true",
                        help="print the traceback of an unexpected error")
    args = parser.parse_args(argv)
    return run_guarded("demo", lambda: _run(args, parser),
                       debug=args.debug or debug_requested(argv))


def _candidate_ops(args: argparse.Namespace) -> dict[str, object]:
    """The candidate job's op config: the seed asked for, and --quick's lighter recipe."""
    training: dict[str, object] = {} if args.seed is None else {"seed": args.seed}
    ops: dict[str, object] = {}
    if args.quick:
        training.update({"epochs": 1, "dev_evalset": "none"})
        ops["training_pairs"] = {"config": {"hard_negatives": False}}
    if training:
        ops["finetuned_encoder"] = {"config": training}
    return ops


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    layout = HomeLayout(resolve_home())
    os.environ.setdefault("DAGSTER_HOME", str(layout.dagster))
    os.makedirs(os.environ["DAGSTER_HOME"], exist_ok=True)

    import dagster as dg

    from platform_defs.definitions import defs

    definitions = defs()
    slice_job = definitions.resolve_job_def("dataset_slices_job")
    partitions = slice_job.partitions_def.get_partition_keys()
    chosen = args.slices or partitions
    unknown = sorted(set(chosen) - set(partitions))
    if unknown:
        parser.error(f"unknown slices {unknown}; declared: {partitions}")

    quiet = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
    failed: list[str] = []
    rows: list[tuple[str, str, str, str]] = []
    with dg.DagsterInstance.get() as instance:
        for name in chosen:
            print(f"==> dataset_slice[{name}]", flush=True)
            result = slice_job.execute_in_process(partition_key=name, instance=instance,
                                                  run_config=quiet, raise_on_error=False)
            metadata = _materialization_metadata(result, "dataset_slice")
            if not result.success:
                failed.append(name)
            rows.append((name, str(metadata.get("content_hash", "-"))[:16],
                         str(metadata.get("row_count", "-")),
                         "yes" if metadata.get("published") else "NO (checks failed)"))
        print("==> embeddings_index", flush=True)
        index_result = definitions.resolve_job_def("embeddings_index_job").execute_in_process(
            instance=instance, run_config=quiet, raise_on_error=False)
        index = _materialization_metadata(index_result, "embeddings_index")
        candidate_result = None
        if args.candidate and index_result.success and not failed:
            print("==> training_pairs → finetuned_encoder → candidate_index → eval_report → "
                  "candidate_model", flush=True)
            candidate_config = {**quiet, "ops": _candidate_ops(args)}
            candidate_result = definitions.resolve_job_def("candidate_job").execute_in_process(
                instance=instance, run_config=candidate_config, raise_on_error=False)

    print("\nDataset slices")
    print(f"  {'slice':<22} {'content hash':<18} {'rows':>6}  published")
    for name, digest, count, published in rows:
        print(f"  {name:<22} {digest:<18} {count:>6}  {published}")
    if index_result.success:
        print("\nEmbeddings index snapshot")
        print(f"  id:        {index['snapshot_id']}")
        print(f"  chunks:    {index['chunk_count']} ({index['embedded_now']} embedded in this run)")
        print(f"  reused:    {index['reused_snapshot']}")
        print(f"  path:      {index['snapshot_path']}")
    else:
        print("\nEmbeddings index: FAILED (see the run in the Dagster UI)")
        _print_failures(index_result)
    candidate_ok = _print_candidate(candidate_result) if args.candidate else True
    print("\nOpen the Dagster UI:  make ui          (http://127.0.0.1:3000)")
    if args.candidate:
        print("Open the MLflow UI:   make mlflow-ui   (http://127.0.0.1:5000)")
        print("Start the gateway:    .venv/bin/plimsoll serve   (http://127.0.0.1:8080/v1/answer)")
        print("  it answers from the version `champion` names and follows the alias as it "
              "moves;\n  until a version is approved it gives the static suggestions "
              "(/readyz says why),\n  and --model models:/plimsoll-docs-assistant/<N> serves "
              "a version now")
    return 1 if failed or not index_result.success or not candidate_ok else 0


def _print_candidate(result: object) -> bool:
    if result is None:
        print("\nCandidate: not built (a slice or the index failed)")
        return False
    if not result.success:
        print("\nCandidate: FAILED (see the candidate_job run in the Dagster UI)")
        _print_failures(result)
        return False
    trained = _materialization_metadata(result, "finetuned_encoder")
    report = _materialization_metadata(result, "eval_report")
    model = _materialization_metadata(result, "candidate_model")
    scores = {row.data["system"]: row.data for row in report["scores"].records}
    print("\nCandidate model version")
    print(f"  checkpoint:  {trained['checkpoint_digest'][:16]} ({trained['steps']} steps, "
          f"final loss {trained['final_loss']:.4f})")
    print(f"  {'system':<10} {'recall@5':>9} {'mrr':>7} {'ndcg@10':>8}")
    for system in ("finetuned", "base", "bm25"):
        row = scores[system]
        print(f"  {system:<10} {row['recall@5']:>9.3f} {row['mrr']:>7.3f} {row['ndcg@10']:>8.3f}")
    safety = scores["finetuned"]
    print(f"  safety:      {safety['critical_violations']:.0f} critical violations, soft "
          f"violation rate {safety['soft_violation_rate']:.3f}, red-team "
          f"{safety['redteam_attacks'] - safety['redteam_through']:.0f}/"
          f"{safety['redteam_attacks']:.0f} attacks stopped")
    print(f"  registered:  {model['model_uri']}  (lineage digest {model['lineage_digest'][:16]})")
    print(f"  verify:      .venv/bin/plimsoll verify {model['version']}")
    return True


def _print_failures(result: object) -> None:
    """The first line of each failed step's error, so the demo's user need not dig for it."""
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data.error is not None:
            message = (event.step_failure_data.error.message or "").strip().splitlines()
            print(f"  {event.step_key}: {message[0] if message else 'failed'}")


def _materialization_metadata(result: object, node: str) -> dict[str, object]:
    materializations = result.asset_materializations_for_node(node)
    if not materializations:
        return {}
    return {key: getattr(value, "value", value)
            for key, value in materializations[-1].metadata.items()}


if __name__ == "__main__":
    sys.exit(main())
