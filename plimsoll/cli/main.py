"""The `plimsoll` command line: slices, snapshots, evals, red team, promotion, the guard."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from plimsoll.cli import alerts, evaluate, flags, promptlint, redteam, serve
from plimsoll.cli.options import TRACKING_URI_HELP, add_debug
from plimsoll.common.boundary import debug_requested, doing, run_guarded
from plimsoll.common.errors import PlimsollError
from plimsoll.common.home import HomeLayout
from plimsoll.common.settings import MODEL_NAME, Settings
from plimsoll.evaluation import evalset_generation


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="plimsoll", description="Plimsoll: versioned data, index snapshots and models.")
    # FOLDER, not HOME: a wider first column keeps each command's help on its own line
    # (argparse measures subcommands at their parent's indent).
    parser.add_argument("--home", default=None, metavar="FOLDER",
                        help="PLIMSOLL_HOME (default: $PLIMSOLL_HOME, else .plimsoll/ in the "
                        "project folder)")
    parser.add_argument("--debug", action="store_true",
                        help="print the traceback of an unexpected error")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = commands.add_parser("data", help="dataset slices").add_subparsers(
        dest="data_command", required=True, metavar="SUBCOMMAND")
    pin = data.add_parser(
        "pin", help="write DVC pointer files of the published slices into data_manifests/",
        description="Copy the DVC pointer (.dvc) file of each published slice version next to "
        "its manifest, so that committing them pins exact data. `dvc status` and `dvc pull` "
        "at the repository root then work on them.")
    pin.add_argument("slices", nargs="*", help="slice names (default: every manifest)")
    pin.add_argument("--manifests", default=None, type=Path,
                     help="folder of slice manifests (default: the project's data_manifests/)")
    pin.add_argument("--remote", default=None,
                     help="DVC remote URL (default: $PLIMSOLL_DVC_REMOTE or "
                     "PLIMSOLL_HOME/dvc-remote)")

    index = commands.add_parser("index", help="embeddings index snapshots").add_subparsers(
        dest="index_command", required=True, metavar="SUBCOMMAND")
    query = index.add_parser("query", help="top-k chunks of a snapshot for a question")
    query.add_argument("question")
    query.add_argument("--snapshot", default=None,
                       help="snapshot id or directory (default: the newest snapshot)")
    query.add_argument("-k", type=_positive_int, default=5,
                       help="number of hits, 1 to 1000 (default: %(default)s)")
    query.add_argument("--encoder", default=None,
                       help="encoder directory (default: the one recorded in the snapshot)")
    query.add_argument("--json", action="store_true", help="print JSON lines")

    verify = commands.add_parser(
        "verify", help="re-check a registered version's lineage digest and artifact hashes",
        description="Recompute the lineage digest over the version's lineage tags and the "
        "hashes of its artifacts (weights, index snapshot, templates). Exit 0 when both "
        "match what was recorded at registration, 1 otherwise.")
    verify.add_argument("version", help="model version number")
    verify.add_argument("--model", default=MODEL_NAME,
                        help="registered model name (default: %(default)s)")

    history = commands.add_parser("history", help="print the promotion ledger",
                                  description="Every move of the champion alias, oldest first.")
    history.add_argument("--model", default=MODEL_NAME)
    history.add_argument("--json", action="store_true", help="print JSON lines")

    rollback = commands.add_parser(
        "rollback", help="move champion back to the previous (or a given) version",
        description="Moves the `champion` alias back along the promotion ledger; weights, "
        "index snapshot and prompt template revert together because the version is the "
        "whole bundle. The rollback is itself a ledger entry.")
    rollback.add_argument("--to", dest="to_version", default=None,
                          help="an earlier champion (default: the one the current replaced)")
    rollback.add_argument("--reason", default="manual rollback", help="ledger reason")
    rollback.add_argument("--model", default=MODEL_NAME)

    status = commands.add_parser(
        "status", help="list versions with their aliases, gate verdict and approval",
        description="One line per version of the model: aliases (champion, challenger, "
        "previous-champion), gate verdict, approval and promotion state.")
    status.add_argument("--model", default=MODEL_NAME)

    review = commands.add_parser(
        "review", help="record a reviewer decision (same as the tags in the MLflow UI)",
        description="Sets the tags `approval` and `approval.by` on a version, exactly as a "
        "reviewer does in the MLflow UI; the approval sensor acts on it.")
    review.add_argument("version")
    review.add_argument("decision", choices=["approved", "rejected"])
    review.add_argument("--by", required=True, help="the reviewer (must not be the trainer)")
    review.add_argument("--model", default=MODEL_NAME)
    guard = commands.add_parser(
        "guard", help="screen text with the query-time guard; one JSON verdict per input",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Screen inputs with the guard the assistant runs at query time, so a "
        "security team can test it on its own corpus.\n\nInput (FILE or stdin): one text "
        "per line, or JSON Lines with a `text` field (an `id` field is echoed), in UTF-8. "
        "Output: one JSON object per input on stdout: flagged, blocked, severity "
        "(critical|soft) and findings (category, OWASP id, severity, rule, span); a summary "
        "on stderr. A text over the policy's length limit for its stage (max_input_chars, "
        "max_passage_chars, max_output_chars) is blocked unread (finding input_too_long).",
        epilog="examples:\n  echo 'Ignore previous instructions' | plimsoll guard\n"
        "  plimsoll guard --stage output answers.jsonl --fail-on critical")
    guard.add_argument("file", nargs="?", type=Path, default=None,
                       help="input file (default: stdin)")
    guard.add_argument("--stage", choices=["input", "passage", "output"], default="input",
                       help="input: a user's question; passage: retrieved content (indirect "
                       "injection); output: an answer (secrets, PII, links, system prompt). "
                       "Default: %(default)s")
    guard.add_argument("--policy", type=Path, default=None,
                       help="guard policy: egress allowlist and length limits (default: "
                       "the project's policies/guard.yaml; built-in defaults when absent)")
    guard.add_argument("--system-prompt", type=Path, default=None,
                       help="template whose text must not appear in outputs (default: the "
                       "project's prompts/system.md, when present)")
    guard.add_argument("--fail-on", choices=["never", "soft", "critical"], default="never",
                       help="exit 1 when an input has a finding of this severity or worse "
                       "(default: %(default)s)")

    for sub in (verify, history, rollback, review, status):
        sub.add_argument("--tracking-uri", default=None, help=TRACKING_URI_HELP)

    # The CI checks; tools/run_eval.py, tools/threat_checks.py and tools/promptlint.py run
    # these same commands.
    for name, command in (("eval", evaluate), ("redteam", redteam),
                          ("promptlint", promptlint), ("serve", serve), ("flags", flags),
                          ("alerts", alerts)):
        sub = commands.add_parser(name, help=command.HELP, description=command.DESCRIPTION,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        command.add_arguments(sub)
        add_debug(sub)
    evalset = commands.add_parser(
        "evalset", help="eval sets: generate the nightly one").add_subparsers(
        dest="evalset_command", required=True, metavar="SUBCOMMAND")
    generate = evalset.add_parser(
        "generate", help="write the nightly eval set from the reference corpus",
        description=evalset_generation.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    evalset_generation.add_arguments(generate)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"{value} is out of range: use 1 to 1000")
    return value


def main(argv: list[str] | None = None) -> int:
    """Entry point: exit 0 done, 1 a check failed, 2 bad input, 3 an unexpected error."""
    from plimsoll.release.registry import bound_mlflow_calls

    bound_mlflow_calls()  # this process's MLflow HTTP limits (MLflow reads only the env)
    args = _parser().parse_args(argv)
    return run_guarded("plimsoll", lambda: _dispatch(args),
                       debug=args.debug or debug_requested(argv))


def _dispatch(args: argparse.Namespace) -> int:
    settings = Settings.from_env(home=args.home, tracking_uri=getattr(args, "tracking_uri", None))
    layout = settings.layout
    with doing(f"running `plimsoll {args.command}`"):
        if args.command == "data":
            return _pin(args, settings)
        if args.command == "verify":
            return _verify(args, settings)
        if args.command in ("history", "rollback", "review", "status"):
            return _promotion(args, settings)
        if args.command == "guard":
            return _guard(args, settings)
        if args.command == "eval":
            return evaluate.run(args, settings)
        if args.command == "redteam":
            return redteam.run(args, settings)
        if args.command == "promptlint":
            return promptlint.run(args)
        if args.command == "serve":
            return serve.run(args, settings)
        if args.command == "flags":
            return flags.run(args, settings)
        if args.command == "alerts":
            return alerts.run(args, settings)
        if args.command == "evalset":
            return evalset_generation.run(args, settings)
        return _query(args, layout)


def _guard(args: argparse.Namespace, settings: Settings) -> int:
    from plimsoll.guard import Guard, GuardPolicy, load_guard_policy
    from plimsoll.guard.inputs import open_texts, read_texts
    from plimsoll.serving.prompts import load_template

    # The project's files when not named; a file named on the command line must exist.
    policy_path = args.policy or settings.guard_policy
    policy = (load_guard_policy(policy_path) if args.policy or policy_path.is_file()
              else GuardPolicy())
    prompt_path = args.system_prompt or settings.prompts / "system.md"
    if args.system_prompt and not prompt_path.is_file():
        raise PlimsollError("system prompt template not found", file=prompt_path,
                            fix="pass an existing template, or leave --system-prompt out")
    system = load_template(prompt_path).render() if prompt_path.is_file() else ""
    guard = Guard(policy, system_prompt=system)
    screen = {"input": guard.screen_input, "passage": guard.screen_passage,
              "output": guard.screen_output}[args.stage]
    counts = {"inputs": 0, "flagged": 0, "critical": 0}
    with open_texts(args.file) as source:
        for number, text, extra in read_texts(source, str(args.file or "<stdin>")):
            verdict = screen(text)
            counts["inputs"] += 1
            counts["flagged"] += verdict.flagged
            counts["critical"] += verdict.blocked
            print(json.dumps({"line": number, **extra, **verdict.as_dict()},
                             ensure_ascii=False), flush=True)
    print(f"plimsoll guard: {counts['inputs']} input(s), {counts['flagged']} flagged, "
          f"{counts['critical']} critical", file=sys.stderr)
    failing = {"never": False, "soft": counts["flagged"] > 0,
               "critical": counts["critical"] > 0}[args.fail_on]
    return 1 if failing else 0


def _pin(args: argparse.Namespace, settings: Settings) -> int:
    from plimsoll.datasets.manifests import slice_names
    from plimsoll.datasets.store import REMOTE_NAME, SliceStore

    layout = settings.layout
    manifests: Path = args.manifests or settings.manifests
    if not manifests.is_dir():
        raise PlimsollError("manifest folder not found", file=manifests,
                            fix="run from the repository root or pass --manifests")
    declared = slice_names(manifests)
    names = args.slices or declared
    unknown = sorted(set(names) - set(declared))
    if unknown:
        raise PlimsollError(f"no manifest for {unknown}", file=manifests,
                            fix=f"choose from {declared}")
    remote = args.remote or os.environ.get("PLIMSOLL_DVC_REMOTE") or str(layout.dvc_remote)
    store = SliceStore(layout.dvc_workspace, remote)
    for pointer in store.pin(names, manifests):
        published = store.published(pointer.name.removesuffix(".parquet.dvc"))
        print(f"pinned {pointer}  md5={published.dvc_md5}  rows={published.row_count}  "
              f"content={published.content_hash[:16]}")
    repo_root = _dvc_root(manifests)
    if repo_root is not None and not remote.startswith(("s3://", "gs://", "azure://")):
        # The committed .dvc/config names the default home; a different home goes local.
        _set_local_remote(repo_root, REMOTE_NAME, str(Path(remote).resolve()))
    return 0


def _dvc_root(start: Path) -> Path | None:
    for folder in [start.resolve(), *start.resolve().parents]:
        if (folder / ".dvc").is_dir():
            return folder
    return None


def _set_local_remote(repo_root: Path, name: str, url: str) -> None:
    from dvc.repo import Repo

    with Repo(str(repo_root)) as repo:
        configured = repo.config["remote"].get(name, {}).get("url")
        has_default = bool(repo.config["core"].get("remote"))
        if configured and Path(configured).resolve() == Path(url) and has_default:
            return
        with repo.config.edit("local") as config:
            config["remote"][name] = {"url": url}
            if not has_default:
                config["core"]["remote"] = name
    print(f"set DVC remote '{name}' to {url} in .dvc/config.local")


def _tracking_uri(settings: Settings) -> str:
    """The settings' tracking URI (--tracking-uri, $MLFLOW_TRACKING_URI, the home's), checked.

    A SQLite store that does not exist is an error here: MLflow would create an empty one
    for a typo and then report the model as missing.
    """
    from plimsoll.common.sql import open_engine

    uri, layout = settings.tracking_uri, settings.layout
    if settings.tracking_uri_source == "PLIMSOLL_HOME" and not layout.mlflow_db.is_file():
        raise PlimsollError(f"no MLflow store under {layout.root} yet", field="PLIMSOLL_HOME",
                            fix="run `make demo` to build one, or point --home, "
                            "$PLIMSOLL_HOME or --tracking-uri at an existing store")
    if uri.startswith("sqlite:"):
        open_engine(uri, "MLflow store", create=False,
                    env="MLFLOW_TRACKING_URI"
                    if settings.tracking_uri_source != "--tracking-uri" else None).dispose()
    elif not uri.startswith(("http://", "https://", "postgresql")):
        raise PlimsollError(f"'{uri}' is not a tracking URI Plimsoll can use",
                            field="--tracking-uri", fix="use sqlite:///path/mlflow.db or "
                            "http(s)://your-mlflow-server")
    return uri


def _ledger_url(layout: HomeLayout) -> str:
    """$PLIMSOLL_LEDGER_URL, else the home's ledger, which registration creates."""
    from plimsoll.release.ledger import LEDGER_ENV

    configured = os.environ.get(LEDGER_ENV)
    if not configured and not layout.ledger_file.is_file():
        raise PlimsollError(f"no promotion ledger under {layout.root} yet (registration "
                            "creates it)", field="PLIMSOLL_HOME",
                            fix="run `make demo` first, or point --home, $PLIMSOLL_HOME or "
                            f"${LEDGER_ENV} at the deployment's ledger")
    return configured or layout.ledger_url


def _verify(args: argparse.Namespace, settings: Settings) -> int:
    from plimsoll.release.lineage_record import LineageRecords
    from plimsoll.release.registry import ModelRegistry

    uri = _tracking_uri(settings)
    records = LineageRecords(_ledger_url(settings.layout), create=False)
    with doing(f"verifying {args.model} version {args.version} against {uri}"):
        result = ModelRegistry(uri, records=records).verify(args.model, args.version)
    if result.ok:
        print(f"OK {args.model} version {args.version}: lineage tags match the lineage "
              "record and the artifact hashes match the registration")
        return 0
    print(f"FAILED {args.model} version {args.version}:")
    for problem in result.problems:
        print(f"  - {problem}")
    return 1


def _promotion(args: argparse.Namespace, settings: Settings) -> int:
    import time

    from plimsoll.release.ledger import PromotionLedger
    from plimsoll.release.promotion import APPROVAL, APPROVED_BY, Promoter, current_actor

    layout = settings.layout
    if args.command == "history":
        return _history(args, PromotionLedger(_ledger_url(layout), create=False))
    uri = _tracking_uri(settings)
    ledger_url = _ledger_url(layout) if args.command == "rollback" else (
        os.environ.get("PLIMSOLL_LEDGER_URL") or layout.ledger_url)
    if args.command == "rollback":
        from plimsoll.release.aliases import fast_aliases

        # The 3 a.m. lever: no MLflow import (1.4 s here); the fast path speaks its API/SQL.
        # It needs no policy either: a typo in the policy must not block a rollback.
        ledger = PromotionLedger(ledger_url, create=False)
        promoter = Promoter(None, ledger, None, args.model, aliases=fast_aliases(uri))
        start = time.perf_counter()
        for outcome in promoter.reconcile():
            print(f"reconciled: {outcome.reason}")
        entry = promoter.rollback(args.to_version, actor=current_actor(), reason=args.reason)
        print(f"champion of {args.model}: v{entry.from_version} → v{entry.to_version} "
              f"({time.perf_counter() - start:.2f}s; ledger entry {entry.entry_id})")
        return 0
    from plimsoll.common.sql import StoreError
    from plimsoll.release.registry import ModelRegistry

    registry = ModelRegistry(uri)
    if args.command == "status":
        try:
            ledger = PromotionLedger(ledger_url, create=False)
        except StoreError:
            ledger = None  # nothing promoted yet: status still lists the versions
        return _status(args, registry, ledger)
    if args.command == "review":
        reviewer = " ".join(args.by.split())
        if not reviewer:
            raise PlimsollError("the reviewer's name is empty", field="--by",
                                fix="pass your name: --by 'Ada Lovelace'")
        registry.version(args.model, args.version)  # a missing version says so
        _warn_self_review(args, layout, reviewer)
        # approval.by first: the sensor never sees a decision without its reviewer.
        registry.set_tag(args.model, args.version, APPROVED_BY, reviewer)
        registry.set_tag(args.model, args.version, APPROVAL, args.decision)
        print(f"{args.model} v{args.version}: approval={args.decision} by {reviewer}; the "
              "approval sensor acts on it at its next tick")
    return 0


def _warn_self_review(args: argparse.Namespace, layout: HomeLayout, reviewer: str) -> None:
    """Say now what the approval sensor will refuse: a trainer approving their own version.

    The tags are still set, exactly as in the MLflow UI, so the refusal is recorded on the
    version by the sensor, where every reviewer looks.
    """
    from plimsoll.common.sql import StoreError
    from plimsoll.release.lineage_record import LineageRecords, normalise_identity

    try:
        record = LineageRecords(os.environ.get("PLIMSOLL_LEDGER_URL") or layout.ledger_url,
                                create=False).get(args.model, str(args.version))
    except StoreError:
        return  # no record store here: the sensor decides with the deployment's
    if record is not None and normalise_identity(reviewer) in record.trainers:
        print(f"plimsoll: warning: {reviewer} trained {args.model} version {args.version}; "
              "the approval sensor will refuse this as self-approval", file=sys.stderr)


def _history(args: argparse.Namespace, ledger) -> int:
    rows = ledger.rows(args.model)
    completed = {e.completes for e in rows if e.completes is not None}
    shown = [e for e in rows if not (e.status == "intent" and e.entry_id in completed)]
    if not shown:
        print(f"no promotions of {args.model} yet")
    for e in shown:
        if args.json:
            print(json.dumps({"id": e.entry_id, "at": e.at.isoformat(), "model": e.model,
                              "from": e.from_version, "to": e.to_version,
                              "action": e.action, "actor": e.actor, "reason": e.reason,
                              "lineage_digest": e.lineage_digest, "status": e.status,
                              "follows": e.follows, "completes": e.completes}))
        else:
            marker = {"done": "", "reverted": "  [reverted]",
                      "intent": "  [unfinished: the next rollback or approval tick settles it]"
                      }[e.status]
            print(f"{e.entry_id:>4}  {e.at:%Y-%m-%d %H:%M:%S}  {e.action:<8} "
                  f"v{e.from_version or '-'} → v{e.to_version}  by {e.actor}: {e.reason}"
                  f"{marker}")
    return 0


def _status(args: argparse.Namespace, registry, ledger) -> int:
    versions = registry.versions(args.model)
    if not versions:
        print(f"no versions of {args.model} yet: run `make demo`")
    aliases: dict[str, list[str]] = {}
    if versions:
        for alias, version in sorted(registry.aliases(args.model).items()):
            aliases.setdefault(version, []).append(alias)
    print(f"{'version':>7}  {'aliases':<28} {'gate':<6} {'approval':<10} state")
    for found in versions:
        tags = found.tags
        print(f"{found.version:>7}  {','.join(aliases.get(str(found.version), [])) or '-':<28}"
              f" {tags.get('gate.verdict', '-'):<6} {tags.get('approval', '-'):<10} "
              f"{tags.get('promotion.state', '-')}")
    for intent in ledger.open_intents(args.model) if ledger is not None else []:
        print(f"unfinished: ledger entry {intent.entry_id} ({intent.action} "
              f"v{intent.from_version or '-'} → v{intent.to_version} by {intent.actor}); "
              "the next `plimsoll rollback` or approval tick completes or reverts it")
    return 0


def _query(args: argparse.Namespace, layout: HomeLayout) -> int:
    if not args.question.strip():
        raise PlimsollError("the question is empty", field="question",
                            fix='ask something, e.g. plimsoll index query "how do I split a '
                            'string?"')
    from plimsoll.retrieval.encoder import Encoder, EncoderDirectory
    from plimsoll.retrieval.snapshot import IndexSnapshot, query_snapshot

    if args.snapshot and Path(args.snapshot).is_dir():
        path = Path(args.snapshot)
    elif args.snapshot:
        path = layout.index_snapshots / args.snapshot
    else:
        candidates = sorted((p for p in layout.index_snapshots.glob("[0-9a-f]*") if p.is_dir()),
                            key=lambda p: p.stat().st_mtime)
        if not candidates:
            raise PlimsollError("no index snapshot yet", file=layout.index_snapshots,
                                fix="run `make demo` or materialize embeddings_index")
        path = candidates[-1]
    if not path.is_dir():
        raise PlimsollError("snapshot not found", file=path,
                            fix="pass a snapshot id listed under PLIMSOLL_HOME/index_snapshots")
    snapshot = IndexSnapshot(path)
    encoder = Encoder(EncoderDirectory.open(args.encoder or snapshot.manifest["encoder_path"]))
    for hit in query_snapshot(snapshot, encoder, args.question, k=args.k):
        if args.json:
            print(json.dumps({"rank": hit.rank, "score": round(hit.score, 4),
                              "chunk_id": hit.chunk_id, "doc_id": hit.doc_id,
                              "slice": hit.slice, "snapshot_id": snapshot.snapshot_id}))
        else:
            preview = " ".join(hit.text.split())[:100]
            print(f"{hit.rank:>2}. {hit.score:.3f}  {hit.chunk_id}  {preview}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
