import subprocess
import sys
from pathlib import Path

import pytest

from plimsoll.cli.main import main

PLIMSOLL = str(Path(sys.executable).parent / "plimsoll")


@pytest.mark.parametrize("args", [["--help"], ["data", "pin", "--help"],
                                  ["index", "query", "--help"]])
def test_help(args):
    done = subprocess.run([PLIMSOLL, *args], capture_output=True, text=True)
    assert done.returncode == 0 and "usage: plimsoll" in done.stdout


def test_pin_before_publishing_says_what_to_do(home, manifests, capsys):
    assert main(["data", "pin", "--manifests", str(manifests)]) == 2
    error = capsys.readouterr().err
    assert "has not been published yet" in error
    assert "materialize dataset_slice partition 'faq'" in error


def test_pin_unknown_slice(home, manifests, capsys):
    assert main(["data", "pin", "nope", "--manifests", str(manifests)]) == 2
    assert "no manifest for ['nope']" in capsys.readouterr().err


def test_query_without_snapshot(home, capsys):
    assert main(["index", "query", "anything"]) == 2
    assert "no index snapshot yet" in capsys.readouterr().err


def test_query_prints_ranked_hits(home, manifests, capsys):
    from plimsoll.common.home import HomeLayout
    from plimsoll.datasets.manifests import load_manifest
    from plimsoll.datasets.slices import build_slice
    from plimsoll.datasets.store import SliceStore
    from plimsoll.retrieval.chunking import ChunkingParams
    from plimsoll.retrieval.encoder import EncoderDirectory
    from plimsoll.retrieval.snapshot import SnapshotBuilder

    layout = HomeLayout(home)
    store = SliceStore(layout.dvc_workspace, str(layout.dvc_remote))
    published = store.publish(build_slice(load_manifest(manifests / "faq.yaml")))
    SnapshotBuilder(layout.index_snapshots, layout.embedding_cache, EncoderDirectory.open(None),
                    ChunkingParams()).build([published])
    assert main(["index", "query", "how do I go back to the previous model?", "-k", "2",
                 "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and '"doc_id": "doc-0"' in lines[0]
