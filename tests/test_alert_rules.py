"""The gateway's alert rules: generated from policies/slos.yaml, committed as generated, valid
for promtool, every alert proven to fire and to stay silent, each pointing at a runbook whose
commands are real `plimsoll` commands; and a policy whose alerts could never work is refused."""

import argparse
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from plimsoll.observability import alerts
from plimsoll.observability.alerts import (
    AlertPolicyError,
    burn_rate,
    render_files,
    rule_set,
    stale_files,
)
from plimsoll.observability.policy import load_observability_policy
from plimsoll.release.policy import PolicyError, load_policy

REPO = Path(__file__).resolve().parent.parent
SLOS = REPO / "policies" / "slos.yaml"
OBSERVABILITY = REPO / "policies" / "observability.yaml"
RULES = REPO / alerts.RULES_FILE


def promtool() -> str:
    """promtool, or a skip naming `make obs-tools` (a failure in CI, which installs it)."""
    path = shutil.which("promtool")
    if path:
        return path
    message = "promtool is not installed: run `make obs-tools` (Debian's prometheus package)"
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def slo():
    return load_policy(SLOS).serving


@pytest.fixture(scope="module")
def rules(slo):
    return rule_set(slo, load_observability_policy(OBSERVABILITY))


def committed_alerts() -> list[dict]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_the_committed_files_are_what_the_policy_generates(slo):
    files = render_files(slo, load_observability_policy(OBSERVABILITY))
    assert {p.as_posix() for p in files} >= {
        "k8s/base/observability/prometheus-rules.yaml",
        "k8s/base/observability/prometheus-rule.yaml",
        "k8s/base/observability/tests/alerts-test.yaml",
        "k8s/base/observability/grafana-dashboard.json"}
    stale = stale_files(REPO, files)
    assert stale == [], f"{stale} differ from policies/slos.yaml: run plimsoll alerts render"


def test_promtool_accepts_the_rules_file_and_the_prometheus_rules_spec(tmp_path):
    tool = promtool()
    manifest = yaml.safe_load((REPO / alerts.PROMETHEUS_RULE_FILE).read_text())
    assert manifest["kind"] == "PrometheusRule"
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"groups": manifest["spec"]["groups"]}))
    for path in (RULES, spec):
        proc = subprocess.run([tool, "check", "rules", str(path)], capture_output=True,
                              text=True, check=False, timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "SUCCESS" in proc.stdout


def test_every_alert_fires_and_stays_silent_in_promtool_unit_tests():
    tool = promtool()
    test_files = sorted((REPO / alerts.ALERT_TESTS_FILE).parent.glob("*.yaml"))
    fires, silent = set(), set()
    for path in test_files:
        document = yaml.safe_load(path.read_text())
        # The unit tests read the generated rule file itself, not a copy.
        assert [(path.parent / f).resolve() for f in document["rule_files"]] == [RULES]
        for test in document["tests"]:
            for check in test["alert_rule_test"]:
                (fires if check["exp_alerts"] else silent).add(check["alertname"])
                for expected in check["exp_alerts"]:
                    assert expected["exp_labels"]["severity"] in {"page", "ticket"}
                    assert expected["exp_annotations"]["runbook_url"].startswith(
                        alerts.RUNBOOK_URL_BASE)
    names = {rule["alert"] for rule in committed_alerts()}
    assert fires == names and silent == names
    # The files run side by side: promtool evaluates every rule at every step.
    runs = [subprocess.Popen([tool, "test", "rules", str(p)], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True) for p in test_files]
    for path, run in zip(test_files, runs, strict=True):
        output, _ = run.communicate(timeout=120)
        assert run.returncode == 0, f"{path.name}:\n{output}"


def test_the_unit_tests_catch_a_wrong_rule(tmp_path):
    """A rule that pages too late, one without its traffic guard: their cases fail."""
    tool = promtool()
    document = yaml.safe_load(RULES.read_text())
    by_name = {r["alert"]: r for g in document["groups"] for r in g["rules"] if "alert" in r}
    safety = by_name["PlimsollSafetyCriticalSpike"]
    safety["expr"] = re.sub(r"> [0-9.]+$", "> 1000", safety["expr"])
    failures = by_name["PlimsollAnswerFailures"]
    failures["expr"] = failures["expr"].split("\nand on ()")[0]
    (tmp_path / "tests").mkdir()
    (tmp_path / RULES.name).write_text(yaml.safe_dump(document))
    # Only these two alerts' cases: the others are proven above, and promtool is slow.
    tests = yaml.safe_load((REPO / alerts.ALERT_TESTS_FILE).read_text())
    tests["tests"] = [t for t in tests["tests"] if t["name"].split(":")[0] in by_name
                      and t["name"].startswith(("PlimsollSafety", "PlimsollAnswerFailures"))]
    assert len(tests["tests"]) == 6
    test_file = tmp_path / "tests" / "alerts-test.yaml"
    test_file.write_text(yaml.safe_dump(tests))
    proc = subprocess.run([tool, "test", "rules", str(test_file)], capture_output=True,
                          text=True, check=False, timeout=120)
    assert proc.returncode == 1
    failed = set(re.findall(r"name: (.+?),\n", proc.stdout + proc.stderr))
    assert failed == {"PlimsollSafetyCriticalSpike: critical findings at 2x the limit fire it",
                      "PlimsollAnswerFailures: timeouts on a trickle of traffic stay silent"}


def test_each_alert_says_how_bad_it_is_and_links_a_runbook_that_exists():
    for rule in committed_alerts():
        assert rule["labels"]["severity"] in {"page", "ticket"}, rule["alert"]
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"]
        path = annotations["runbook_url"].removeprefix(alerts.RUNBOOK_URL_BASE)
        assert path.startswith("policies/runbooks/") and (REPO / path).is_file(), path
        assert rule["alert"].removesuffix("1h").removesuffix("6h").removesuffix(
            "1d").removesuffix("3d") in (REPO / path).read_text()
    linked = {r["annotations"]["runbook_url"].rsplit("/", 1)[1] for r in committed_alerts()}
    assert linked == {p.name for p in (REPO / "policies" / "runbooks").glob("*.md")}


def runbook_commands() -> list[tuple[str, str]]:
    found = []
    for path in sorted((REPO / "policies" / "runbooks").glob("*.md")):
        for block in re.findall(r"```sh\n(.*?)```", path.read_text(), re.DOTALL):
            found += [(path.name, line.strip()) for line in block.splitlines()
                      if line.strip().startswith("plimsoll ")]
    return found


def test_runbook_commands_are_real_plimsoll_commands_with_valid_flag_values():
    """On-call copies these lines: each must parse, and each flag value must validate."""
    from plimsoll.cli import flags
    from plimsoll.cli.main import _parser
    from plimsoll.serving.flags import flag_spec

    commands = runbook_commands()
    assert {name for name, _ in commands} == {
        p.name for p in (REPO / "policies" / "runbooks").glob("*.md")}
    levers = set()
    for name, line in commands:
        words = shlex.split(re.sub(r"<[^>]+>", "2", line))[1:]
        try:
            args = _parser().parse_args(words)
        except SystemExit:
            pytest.fail(f"{name}: `{line}` is not a valid plimsoll command", pytrace=False)
        assert isinstance(args, argparse.Namespace)
        if args.command == "flags" and args.flags_command == "set":
            flags._value(flag_spec(args.name), args.value)
            levers.add(f"flags set {args.name}")
        elif args.command == "rollback":
            levers.add("rollback")
    assert levers >= {"rollback", "flags set pin", "flags set answer_mode",
                      "flags set strict_safety"}


def test_burn_rates_for_a_30_day_window_are_the_sre_workbooks():
    assert [burn_rate(share, long, 30) for long, _, share, _ in alerts.BURN_ALERTS] == [
        14.4, 6, 3, 1]
    assert [(long, short, severity) for long, short, _, severity in alerts.BURN_ALERTS] == [
        ("1h", "5m", "page"), ("6h", "30m", "page"), ("1d", "2h", "ticket"),
        ("3d", "6h", "ticket")]
    # A shorter SLO window has less budget: the same shares burn it at lower rates.
    assert burn_rate(0.02, "1h", 7) == pytest.approx(3.36)


def test_the_latency_sli_reads_the_bucket_of_its_threshold_in_both_spellings(rules):
    assert alerts.le_matcher(0.25) == 'le=~"0\\\\.25"'
    assert alerts.le_matcher(1.0) == 'le=~"1\\\\.0|1"'
    latency = next(r for r in rules.recording if r.record == "plimsoll:latency_errors:ratio_rate5m")
    assert alerts.le_matcher(0.25) in latency.expr


# ---------------------------------------------------------------- bad policy input
def write_policy(tmp_path, edit) -> Path:
    policy = yaml.safe_load(SLOS.read_text())
    edit(policy["serving"])
    path = tmp_path / "slos.yaml"
    path.write_text(yaml.safe_dump(policy))
    return path


def generate(path: Path):
    return rule_set(load_policy(path).serving, load_observability_policy(OBSERVABILITY),
                    source=path)


def test_a_target_of_one_is_refused_naming_the_field(tmp_path):
    path = write_policy(tmp_path, lambda s: s.update(availability=1.0))
    with pytest.raises(PolicyError) as error:
        generate(path)
    assert error.value.field == "serving.availability"
    assert "less than 1" in error.value.problem and str(path) in str(error.value)


def test_a_latency_threshold_that_is_not_a_bucket_is_refused(tmp_path):
    path = write_policy(tmp_path, lambda s: s["latency"].update(threshold_ms=300))
    with pytest.raises(AlertPolicyError) as error:
        generate(path)
    assert error.value.field == "serving.latency.threshold_ms"
    assert "300 ms" in error.value.problem and "not a latency bucket" in error.value.problem
    assert "metrics.latency_buckets_s" in error.value.fix


def test_a_target_too_low_for_the_fast_burn_alert_to_ever_fire_is_refused(tmp_path):
    path = write_policy(tmp_path, lambda s: s["latency"].update(target=0.9))
    with pytest.raises(AlertPolicyError) as error:
        generate(path)
    assert error.value.field == "serving.latency.target"
    assert "could never fire" in error.value.problem and "1h" in error.value.problem


def test_a_latency_doubling_that_outlasts_its_baseline_is_refused(tmp_path):
    path = write_policy(tmp_path, lambda s: s["alerts"]["latency_doubling"].update(
        {"for": "1h", "baseline": "1h"}))
    with pytest.raises(AlertPolicyError) as error:
        generate(path)
    assert error.value.field == "serving.alerts.latency_doubling"
    assert "could never fire" in error.value.problem


def test_a_duration_prometheus_cannot_read_is_refused(tmp_path):
    path = write_policy(tmp_path, lambda s: s["alerts"]["latency_doubling"].update(
        baseline="1 hour"))
    with pytest.raises(PolicyError) as error:
        generate(path)
    assert error.value.field == "serving.alerts.latency_doubling.baseline"


# ---------------------------------------------------------------- plimsoll alerts render
@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "policies").mkdir()
    for path in (SLOS, OBSERVABILITY):
        shutil.copy(path, tmp_path / "policies" / path.name)
    monkeypatch.setenv("PLIMSOLL_PROJECT_DIR", str(tmp_path))
    for name in ("PLIMSOLL_POLICY", "PLIMSOLL_OBSERVABILITY"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def plimsoll(*argv):
    from plimsoll.cli.main import main

    return main(list(argv))


def test_render_writes_the_files_and_check_names_each_stale_one(project, capsys):
    assert plimsoll("alerts", "render", "--check") == 1
    err = capsys.readouterr().err
    assert "k8s/base/observability/prometheus-rules.yaml is out of date" in err
    generated = render_files(load_policy(SLOS).serving, load_observability_policy(OBSERVABILITY))
    assert err.count("run plimsoll alerts render") == len(generated)
    assert plimsoll("alerts", "render") == 0
    for path in generated:
        assert (project / path).read_text() == (REPO / path).read_text()
    capsys.readouterr()
    assert plimsoll("alerts", "render", "--check") == 0
    assert "up to date" in capsys.readouterr().out

    slos = project / "policies" / "slos.yaml"
    slos.write_text(slos.read_text().replace("failure_rate: 0.02", "failure_rate: 0.03"))
    assert plimsoll("alerts", "render", "--check") == 1
    err = capsys.readouterr().err
    assert "prometheus-rules.yaml is out of date with slos.yaml: run plimsoll alerts render" \
        in err
    assert "grafana-dashboard.json" not in err  # the dashboard does not show that threshold


def test_render_refuses_a_bad_policy_with_exit_2_and_writes_nothing(project, capsys):
    slos = project / "policies" / "slos.yaml"
    slos.write_text(slos.read_text().replace("threshold_ms: 250", "threshold_ms: 300"))
    assert plimsoll("alerts", "render") == 2
    err = capsys.readouterr().err
    assert "serving.latency.threshold_ms" in err and "not a latency bucket" in err
    assert not (project / "k8s").exists()


def test_render_into_an_unwritable_place_names_the_file(project, capsys):
    (project / "k8s").write_text("a file where the folder should be")
    assert plimsoll("alerts", "render") == 2
    err = capsys.readouterr().err
    assert "cannot write a generated file" in err
    assert "k8s/base/observability/prometheus-rules.yaml" in err
