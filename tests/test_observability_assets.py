import dataclasses
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest
from conftest import QUIET
from test_drift import DAY, MODEL, traffic, week

from plimsoll.observability.features import RequestFeatureStore

PARTITION = DAY.isoformat()
SHIFTED = {"cyrillic": 0.5, "chars": 150, "abstain": 0.35}  # longer, Cyrillic, more abstention


@pytest.fixture
def ledger_url(home):
    return f"sqlite:///{home / 'promotion_ledger.sqlite'}"


def seed(url, rows):
    store = RequestFeatureStore(url)
    store.record_many(rows)
    store.close()


ALL = ("request_features_daily", "drift_report", "golden_signals")


def materialize(home, ledger_url, *, run_config=None, names=ALL):
    import assets.observability
    from platform_defs.resources import MlflowStore, PlimsollHome, PromotionSettings

    resources = {"mlflow": MlflowStore(tracking_uri="sqlite:///unused.db", model_name=MODEL),
                 "promotion": PromotionSettings(policy_path="unused.yaml",
                                                ledger_url=ledger_url),
                 "home": PlimsollHome(path=str(home))}
    config = {**QUIET, **(run_config or {})}
    with dg.instance_for_test() as instance:
        result = dg.materialize([getattr(assets.observability, name) for name in names],
                                instance=instance, resources=resources, run_config=config,
                                partition_key=PARTITION, raise_on_error=False)
        logs = [entry.user_message for entry in instance.all_logs(result.run_id)]
    return result, logs


def metadata_of(result, node):
    (materialization,) = result.asset_materializations_for_node(node)
    assert materialization.partition == PARTITION
    return {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}


def drift_check(result):
    (check,) = [c for c in result.get_asset_check_evaluations()
                if c.check_name == "drift_within_policy"]
    return check


def test_a_normal_day_passes_and_shows_its_plots(home, ledger_url):
    seed(ledger_url, week() + traffic(DAY, 200, seed=7))
    result, logs = materialize(home, ledger_url)
    assert result.success

    daily = metadata_of(result, "request_features_daily")
    assert daily["requests"] == 200 and daily["requests_per_version"] == {"3": 200}
    assert 0.0 < daily["abstention_rate"] < 0.2 and daily["latency_p95_ms"] > 0
    assert daily["summary"].startswith("| version | requests |")

    check = drift_check(result)
    assert check.passed and not check.blocking
    assert check.description.startswith("within policy: 18 features of 200 requests")
    drift = metadata_of(result, "drift_report")
    assert drift["judged"] is True and drift["alerts"] == []
    assert (drift["day_requests"], drift["reference_requests"]) == (200, 1400)
    assert drift["reference_window"] == "2026-11-03..2026-11-09"
    assert drift["plot"].startswith("![drift on 2026-11-10](data:image/png;base64,")
    plot = Path(drift["plot_path"])
    assert plot == home / "observability" / MODEL / "drift-2026-11-10.png" and plot.is_file()
    assert "| feature | test | statistic |" in drift["report"]
    assert not any(line.startswith("ALERT") for line in logs)

    signals = metadata_of(result, "golden_signals")
    assert signals["requests"] == 200 and signals["v3/requests"] == 200
    assert signals["v3/latency_p50_ms"] <= signals["v3/latency_p95_ms"]
    assert signals["v3/cost"] == pytest.approx(signals["v3/cpu_seconds"] * 0.00005)
    assert signals["plot"].startswith("![golden signals on 2026-11-10](data:image/png;base64,")
    assert Path(signals["plot_path"]).read_bytes()[:4] == b"\x89PNG"


def test_a_shifted_day_fails_the_check_and_logs_each_alert(home, ledger_url):
    seed(ledger_url, week() + traffic(DAY, 200, seed=7, **SHIFTED))
    result, logs = materialize(home, ledger_url)
    assert result.success  # the check is not blocking: the report is still materialized

    check = drift_check(result)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.description == ("5 of 18 features drifted on 2026-11-10: question_chars, "
                                 "question_words, latin_share, cyrillic_share, abstained")
    drifted = ["abstained", "cyrillic_share", "latin_share", "question_chars", "question_words"]
    assert check.metadata["question_chars/statistic"].value > 0.25
    alerts = sorted(line for line in logs if line.startswith("ALERT: "))
    assert [line.split()[1] for line in alerts] == drifted
    (chars,) = [line for line in alerts if line.startswith("ALERT: question_chars")]
    assert "PSI" in chars and "> 0.25 (drift.psi_alert)" in chars
    (abstained,) = [line for line in alerts if line.startswith("ALERT: abstained")]
    assert "beyond ±0.1 (drift.rate_delta_alert)" in abstained
    (cyrillic,) = [line for line in alerts if line.startswith("ALERT: cyrillic_share")]
    assert "mean 0 in the reference" in cyrillic
    assert sorted(metadata_of(result, "drift_report")["alerts"]) == drifted


def test_too_few_requests_pass_the_check_as_not_judged(home, ledger_url):
    seed(ledger_url, week() + traffic(DAY, 12, seed=7, **SHIFTED))
    result, logs = materialize(home, ledger_url, names=["drift_report"])
    check = drift_check(result)
    assert check.passed
    assert check.description.startswith("not judged: 12 requests on 2026-11-10 and 1400 in")
    assert check.metadata["judged"].value is False
    assert any(line.startswith("not judged: 12 requests") for line in logs)
    assert metadata_of(result, "drift_report")["judged"] is False


def test_a_day_without_traffic(home, ledger_url):
    seed(ledger_url, week())  # the gateway recorded nothing on the day itself
    result, _ = materialize(home, ledger_url)
    assert result.success
    assert metadata_of(result, "request_features_daily")["status"] == \
        "no requests recorded on this day"
    assert metadata_of(result, "golden_signals")["requests"] == 0
    drift = metadata_of(result, "drift_report")
    assert drift["judged"] is False and "plot" not in drift
    assert drift_check(result).passed


def test_versions_and_models_are_kept_apart(home, ledger_url):
    day = traffic(DAY, 120, seed=7)
    canary = [dataclasses.replace(r, model_version="4", latency_ms=r.latency_ms * 3)
              for r in traffic(DAY, 40, seed=9, prefix="canary-")]
    other = [dataclasses.replace(r, model="another-model")
             for r in traffic(DAY, 50, seed=11, prefix="other-")]
    seed(ledger_url, day + canary + other)
    result, _ = materialize(home, ledger_url, names=["request_features_daily", "golden_signals"])
    assert metadata_of(result, "request_features_daily")["requests_per_version"] == {
        "3": 120, "4": 40}
    signals = metadata_of(result, "golden_signals")
    assert (signals["v3/requests"], signals["v4/requests"]) == (120, 40)
    assert signals["v4/latency_p50_ms"] > signals["v3/latency_p50_ms"]
    result, _ = materialize(home, ledger_url, names=["request_features_daily"], run_config={
        "ops": {"request_features_daily": {"config": {"model": "another-model"}}}})
    assert metadata_of(result, "request_features_daily")["requests_per_version"] == {"3": 50}


def test_an_invalid_drift_policy_fails_the_report_naming_the_field(home, ledger_url, tmp_path):
    seed(ledger_url, traffic(DAY, 40, seed=7))
    bad = tmp_path / "observability.yaml"
    bad.write_text("version: 1\ndrift:\n  psi_alert: -1\n")
    result, _ = materialize(home, ledger_url, names=["drift_report"], run_config={
        "ops": {"drift_report": {"config": {"policy": str(bad)}}}})
    assert not result.success
    failure = result.failure_data_for_node("drift_report")
    message = str(failure.error.message) + "".join(
        str(c.message) for c in [failure.error.cause] if c)
    assert "observability.yaml" in message and "drift.psi_alert" in message


def test_a_missing_ledger_is_an_error_that_names_it_and_creates_nothing(home):
    missing = home / "nowhere.sqlite"
    result, _ = materialize(home, f"sqlite:///{missing}", names=["request_features_daily"])
    assert not result.success and not missing.exists()
    failure = result.failure_data_for_node("request_features_daily")
    assert "no request feature store at" in str(failure.error.message) + "".join(
        str(c.message) for c in [failure.error.cause] if c)


def test_the_partitions_start_in_november_2026_and_include_today():
    from datetime import UTC, datetime

    from assets.observability import DAYS

    keys = DAYS.get_partition_keys()
    assert keys[0] == "2026-11-01"
    assert keys[-1] == datetime.now(UTC).date().isoformat()
    assert (datetime.now(UTC).date() - timedelta(days=1)).isoformat() in keys
