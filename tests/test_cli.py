import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT, write_jsonl

from plimsoll.cli.main import main

PLIMSOLL = str(Path(sys.executable).parent / "plimsoll")


@pytest.mark.parametrize("args", [["--help"], ["data", "pin", "--help"],
                                  ["index", "query", "--help"], ["eval", "--help"],
                                  ["redteam", "--help"], ["promptlint", "--help"],
                                  ["evalset", "generate", "--help"]])
def test_help(args):
    done = subprocess.run([PLIMSOLL, *args], capture_output=True, text=True)
    assert done.returncode == 0 and "usage: plimsoll" in done.stdout


@pytest.mark.usefixtures("home")
def test_pin_before_publishing_says_what_to_do(manifests, capsys):
    assert main(["data", "pin", "--manifests", str(manifests)]) == 2
    error = capsys.readouterr().err
    assert "has not been published yet" in error
    assert "materialize dataset_slice partition 'faq'" in error


@pytest.mark.usefixtures("home")
def test_pin_unknown_slice(manifests, capsys):
    assert main(["data", "pin", "nope", "--manifests", str(manifests)]) == 2
    assert "no manifest for ['nope']" in capsys.readouterr().err


@pytest.mark.usefixtures("home")
def test_query_without_snapshot(capsys):
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


def test_help_lists_every_command_with_one_line():
    done = subprocess.run([PLIMSOLL, "--help"], capture_output=True, text=True)
    listed = {line.split()[0]: line for line in done.stdout.splitlines()
              if line.startswith("    ") and line.split()}
    for command in ("data", "index", "verify", "history", "rollback", "status", "review",
                    "guard", "eval", "redteam", "promptlint", "evalset"):
        assert command in listed, done.stdout
    assert "eval set on a model" in listed["eval"] and "red-team set" in listed["redteam"]
    assert "PL001-PL012" in listed["promptlint"] and "nightly" in listed["evalset"]


def _tool(name, *argv, cwd=None):
    return subprocess.run([sys.executable, str(REPO_ROOT / "tools" / f"{name}.py"), *argv],
                          capture_output=True, text=True, cwd=cwd)


def test_promptlint_is_the_same_command(tmp_path, capsys):
    bad = tmp_path / "bad.md"
    bad.write_text("---\nid: t\nversion: 1.0.0\nowner: o\nvariables: [answer]\n---\n"
                   "{{ answer }} {{ undeclared }}\n")
    for paths, code in (([str(REPO_ROOT / "prompts")], 0), ([str(bad)], 1),
                        ([str(tmp_path / "nope")], 2)):
        tool = _tool("promptlint", *paths)
        assert main(["promptlint", *paths]) == tool.returncode == code
        captured = capsys.readouterr()
        assert (captured.out, captured.err) == (tool.stdout, tool.stderr)


@pytest.mark.parametrize(("command", "tool", "argv", "named"), [
    ("eval", "run_eval", ["--model", "m", "--limit", "-1"], "a limit of -1"),
    ("redteam", "threat_checks", ["--categories", "sql_injection"], "sql_injection"),
])
def test_eval_and_redteam_refuse_bad_input_as_the_tools_do(capsys, command, tool, argv, named):
    done = _tool(tool, *argv)
    assert main([command, *argv]) == done.returncode == 2
    err = capsys.readouterr().err
    assert err.removeprefix("plimsoll: ") == done.stderr.removeprefix(f"{tool}: ")
    assert named in err and "fix:" in err


def test_the_policy_and_red_team_set_come_from_the_settings(tmp_path, monkeypatch, capsys):
    # PLIMSOLL_POLICY names the policy for `plimsoll eval` as it does for the definitions
    # (before, the eval tools read policies/slos.yaml whatever it said).
    monkeypatch.setenv("PLIMSOLL_POLICY", str(tmp_path / "elsewhere.yaml"))
    assert main(["eval", "--model", "m"]) == 2
    assert "elsewhere.yaml" in capsys.readouterr().err
    monkeypatch.setenv("PLIMSOLL_REDTEAM", str(write_jsonl(tmp_path / "benign.jsonl", [
        {"id": "b1", "category": "benign", "input": "How do I split a string?"}])))
    assert main(["redteam"]) == 2
    err = capsys.readouterr().err
    assert "no attack case" in err and "benign.jsonl" in err


def test_evalset_generate_writes_the_committed_nightly_set(tmp_path, capsys):
    out = tmp_path / "nightly.jsonl"
    assert main(["evalset", "generate", "--out", str(out)]) == 0
    assert capsys.readouterr().out == f"wrote 379 questions to {out}\n"
    committed = REPO_ROOT / "evalsets" / "python_docs_nightly.jsonl"
    assert out.read_bytes() == committed.read_bytes()
    again = tmp_path / "again.jsonl"  # the module path keeps working, from any folder
    done = subprocess.run([sys.executable, "-m", "plimsoll.evaluation.evalset_generation",
                           "--out", str(again)], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0 and again.read_bytes() == committed.read_bytes()
