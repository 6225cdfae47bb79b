"""`plimsoll alerts render`: write the alert rules and the dashboard from policies/slos.yaml."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from plimsoll.cli.options import add_debug
from plimsoll.common.errors import PlimsollError

if TYPE_CHECKING:
    from plimsoll.common.settings import Settings

HELP = "alert rules and dashboard, generated from policies/slos.yaml"
# Written out rather than read from plimsoll.observability.alerts: building the parser of
# every `plimsoll` command must not import the generator (and yaml with it).
DESCRIPTION = """\
The gateway's alert rules are code generated from the `serving:` section of
policies/slos.yaml (and the latency buckets of policies/observability.yaml). One generation
writes, under k8s/base/observability/:

  prometheus-rules.yaml     the rule groups (recording rules, then alerts) for promtool
                            and any Prometheus
  prometheus-rule.yaml      the same groups as a Prometheus Operator PrometheusRule
  tests/alerts-test*.yaml   promtool unit tests: each alert fires, and stays silent
                            (one file per evaluation interval)
  grafana-dashboard.json    the golden-signals dashboard (a ConfigMap for Grafana)

Edit the policy, run `plimsoll alerts render`, commit the result; CI runs
`plimsoll alerts render --check`, which exits 1 naming each file that is out of date.

examples:
  plimsoll alerts render
  plimsoll alerts render --check
  promtool test rules k8s/base/observability/tests/*.yaml
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The subcommands of `plimsoll alerts`."""
    commands = parser.add_subparsers(dest="alerts_command", required=True,
                                     metavar="SUBCOMMAND")
    render = commands.add_parser(
        "render", help="write the rules, the PrometheusRule, their tests and the dashboard",
        description="Generate every file from the policies and write the ones that changed; "
        "with --check write nothing and exit 1 when a committed file is out of date.")
    render.add_argument("--check", action="store_true",
                        help="only compare with the committed files (exit 1 when stale)")
    add_debug(render)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run `plimsoll alerts render`; 0 when the files are (or now are) up to date."""
    import sys

    from plimsoll.observability.alerts import render_files, stale_files
    from plimsoll.observability.policy import load_observability_policy
    from plimsoll.release.policy import load_policy

    slo = load_policy(settings.policy).serving
    observability = load_observability_policy(settings.observability)
    files = render_files(slo, observability, source=settings.policy)
    project = settings.project_dir
    stale = stale_files(project, files)
    if args.check:
        for path in stale:
            print(f"{path.as_posix()} is out of date with {settings.policy.name}: run "
                  "plimsoll alerts render, then commit it", file=sys.stderr)
        if not stale:
            print(f"plimsoll alerts: {len(files)} generated files up to date")
        return 1 if stale else 0
    for path in stale:
        target = project / path
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(files[path])
        except OSError as exc:
            raise PlimsollError(f"cannot write a generated file ({exc.strerror or exc})",
                                file=target, fix="run from a writable checkout") from None
        print(f"wrote {path.as_posix()}")
    print(f"plimsoll alerts: {len(files) - len(stale)} unchanged, {len(stale)} written")
    return 0
