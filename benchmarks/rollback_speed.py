"""Rollback time on the embedded store, against the 1 s target and the 5-minute seed practice.

Registers two small candidate versions, promotes both, then times `plimsoll rollback`
end to end (a fresh process, as on-call runs it) and the core call alone.

Usage: python benchmarks/rollback_speed.py [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from plimsoll.common.home import HomeLayout  # noqa: E402
from plimsoll.datasets.manifests import load_manifest  # noqa: E402
from plimsoll.datasets.slices import build_slice  # noqa: E402
from plimsoll.datasets.store import SliceStore  # noqa: E402
from plimsoll.release.ledger import PromotionLedger  # noqa: E402
from plimsoll.release.policy import load_policy  # noqa: E402
from plimsoll.release.promotion import Promoter  # noqa: E402
from plimsoll.release.registry import Bundle, ModelRegistry, lineage_tags  # noqa: E402
from plimsoll.retrieval.chunking import ChunkingParams  # noqa: E402
from plimsoll.retrieval.encoder import EncoderDirectory  # noqa: E402
from plimsoll.retrieval.snapshot import SnapshotBuilder  # noqa: E402
from plimsoll.serving.pyfunc import pyfunc_model  # noqa: E402

TARGET_S, SEED_PRACTICE_S = 1.0, 300.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        layout = HomeLayout(Path(tmp))
        os.environ["PLIMSOLL_HOME"] = str(layout.root)
        store = SliceStore(layout.dvc_workspace, str(layout.dvc_remote))
        published = store.publish(build_slice(load_manifest(
            REPO / "data_manifests" / "example_faq.yaml")))
        encoder = EncoderDirectory.open(None)
        snapshot = SnapshotBuilder(layout.index_snapshots, layout.embedding_cache, encoder,
                                   ChunkingParams()).build([published])
        layout.mlflow.mkdir(parents=True)
        registry = ModelRegistry(layout.mlflow_tracking_uri,
                                 artifact_root=str(layout.mlflow / "artifacts"))
        promoter = Promoter(registry, PromotionLedger(layout.ledger_url),
                            load_policy(REPO / "policies" / "slos.yaml"))
        bundle = Bundle(encoder.path, snapshot.path, REPO / "prompts" / "answer.md",
                        REPO / "prompts" / "abstain.md")
        for key in ("a", "b"):
            with registry.training_run(registry.ensure_reachable(), f"bench-{key}", {}) as run:
                version = registry.register(promoter.model, bundle, lineage_tags(
                    {"bundle_key": key, "eval_scores": {}}), run.run_id, pyfunc_model())
            promoter._move_champion(version, action="promote", actor="bench", reason="setup",
                                    digest="")
        cli, core = [], []
        for _ in range(args.repeats):  # champion is v2: the CLI goes to v1, the core back
            start = time.perf_counter()
            subprocess.run([str(Path(sys.executable).parent / "plimsoll"), "rollback", "--to",
                            "1", "--reason", "benchmark"], check=True, cwd=REPO,
                           capture_output=True)
            cli.append(time.perf_counter() - start)
            start = time.perf_counter()
            promoter.rollback("2", actor="bench", reason="benchmark")
            core.append(time.perf_counter() - start)
        history = [json.loads(line) for line in subprocess.run(
            [str(Path(sys.executable).parent / "plimsoll"), "history", "--json"], cwd=REPO,
            check=True, capture_output=True, text=True).stdout.splitlines()]
    best_cli, best_core = min(cli), min(core)
    print(f"rollbacks done: {len(history) - 2} (each a ledger entry)")
    print(f"  `plimsoll rollback` end to end (new process): best {best_cli:.2f}s, "
          f"worst {max(cli):.2f}s")
    print(f"  Promoter.rollback (core call, warm):        best {best_core:.3f}s")
    print(f"  RATIO end-to-end / 1 s target = {best_cli / TARGET_S:.2f}   (target < 1)")
    print(f"  RATIO end-to-end / 5 min seed practice = {best_cli / SEED_PRACTICE_S:.4f}")
    return 0 if best_cli < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
