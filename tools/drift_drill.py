"""A drift drill: a week of real gateway answers, then a shifted day, for the drift check.

On-call and data scientists rehearse the drift alarm without waiting a week for traffic.
The drill opens the gateway in this process over a registered version (the same code path as
`plimsoll serve`), asks it `--per-day` questions for each of `--days` reference days (the CI
and nightly eval sets' questions: real questions, real answers) and then for the drill day,
and records each answer's request features (never the text) dated to its day. The drill day
is shifted the way an incident would shift it:

  attack-wave   half the questions are the red-team set's attacks: refusals, guard flags
                and question lengths move (a prompt-injection campaign)
  none          the drill day looks like the week: the check must pass

The features go to their own store (`--ledger-url`, by default `drift-drill.sqlite` in the
home), never to the one that real traffic writes. The drill then prints the command that
materializes the day's drift report in Dagster, whose check fails with an ALERT line per
drifted feature on an attack-wave day.

Usage: python tools/drift_drill.py [--model REF] [--days N] [--per-day N]
                                   [--day YYYY-MM-DD] [--shift attack-wave|none]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from plimsoll.common.errors import PlimsollError  # noqa: E402
from plimsoll.common.files import read_jsonl  # noqa: E402
from plimsoll.common.settings import Settings  # noqa: E402

SHIFTS = ("attack-wave", "none")


class CapturedFeatures:
    """Stands in for the gateway's feature recorder: keeps the rows for re-dating."""

    def __init__(self) -> None:
        self.rows: list = []

    def put(self, row) -> bool:
        """Keep one row (the observer's thread calls this)."""
        self.rows.append(row)
        return True

    def close(self, timeout: float = 0.0) -> None:
        """Nothing to flush."""


def questions(settings: Settings) -> tuple[list[str], list[str]]:
    """(everyday questions from the eval sets, attacks from the red-team set)."""
    everyday = [row["question"] for path in (settings.evalset, REPO / "evalsets" /
                                             "python_docs_nightly.jsonl") if path.is_file()
                for _, row in read_jsonl(path) if row.get("question")]
    # Direct attacks only: an indirect one is a plain question over a planted passage.
    attacks = [row["input"] for _, row in read_jsonl(settings.redteam)
               if row.get("category") not in ("benign", "indirect_injection")
               and isinstance(row.get("input"), str) and row["input"].strip()]
    return everyday, attacks


def main(argv: list[str] | None = None) -> int:
    """Run the drill; 0 when the features are recorded."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="the version to answer with (default: "
                        "models:/<model>@champion; e.g. models:/plimsoll-docs-assistant/1)")
    parser.add_argument("--days", type=int, default=7, help="reference days (default: 7)")
    parser.add_argument("--per-day", type=int, default=250,
                        help="answers per day (default: %(default)s; the policy judges a day "
                        "from drift.min_requests)")
    parser.add_argument("--day", type=date.fromisoformat, default=None,
                        help="the drill day (default: yesterday, UTC)")
    parser.add_argument("--shift", choices=SHIFTS, default="attack-wave")
    parser.add_argument("--ledger-url", default=None,
                        help="where the features go (default: sqlite in the home, "
                        "drift-drill.sqlite)")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    day = args.day or (datetime.now(UTC).date() - timedelta(days=1))
    ledger = args.ledger_url or f"sqlite:///{settings.home / 'drift-drill.sqlite'}"
    try:
        rows = drill(settings, args, day)
        from plimsoll.observability.features import RequestFeatureStore

        store = RequestFeatureStore(ledger)
        try:
            written = store.record_many(rows)
        finally:
            store.close()
    except PlimsollError as exc:
        print(f"drift_drill: {exc}", file=sys.stderr)
        return 1
    first = day - timedelta(days=args.days)
    print(f"drift_drill: {written} request features for {first}..{day} "
          f"({args.days} reference days and {day}, shift {args.shift}) in {ledger}")
    print("Materialize the drill day's drift report (its check fails on drift):\n"
          f"  PLIMSOLL_LEDGER_URL={ledger} .venv/bin/dagster asset materialize "
          f"-m platform_defs.definitions --select request_features_daily,drift_report "
          f"--partition {day}")
    return 0


def drill(settings: Settings, args: argparse.Namespace, day: date) -> list:
    """Real answers from the gateway, their features dated over the week and the drill day."""
    import torch
    from tqdm import tqdm

    from plimsoll.cli import serve

    torch.set_num_threads(1)
    parser = argparse.ArgumentParser()
    serve.add_arguments(parser)
    serve_args = parser.parse_args(["--traces", "none", "--no-metrics",
                                    *(["--model", args.model] if args.model else [])])
    gateway, _app = serve.build_gateway(serve_args, settings)
    captured = CapturedFeatures()
    if gateway.observer.features is not None:
        gateway.observer.features.close()
    gateway.observer.features = captured
    gateway.start()
    try:
        if not gateway.wait_until_ready(120):
            raise PlimsollError(f"the gateway did not get ready: {gateway.ready()[1]}",
                                field="--model", fix="serve a registered version (make demo, "
                                "then --model models:/plimsoll-docs-assistant/1)")
        everyday, attacks = questions(settings)
        days = [day - timedelta(days=n) for n in range(args.days, 0, -1)] + [day]
        dated: list = []
        with tqdm(total=len(days) * args.per_day, desc="drill answers", unit="answer") as bar:
            for number, when in enumerate(days):
                shifted = when == day and args.shift == "attack-wave"
                start = len(captured.rows)
                for i in range(args.per_day):
                    pool = attacks if shifted and i % 2 else everyday
                    gateway.answer(pool[(number * args.per_day + i) % len(pool)])
                    bar.update()
                gateway.observer.wait_idle(30)
                noon = datetime(when.year, when.month, when.day, 12, tzinfo=UTC)
                for n, row in enumerate(captured.rows[start:]):
                    dated.append(dataclasses.replace(
                        row, at=noon + timedelta(seconds=n * 60 // max(args.per_day, 1))))
        return dated
    finally:
        gateway.stop()


if __name__ == "__main__":
    sys.exit(main())
