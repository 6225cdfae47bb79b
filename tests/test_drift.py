import math
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from plimsoll.observability.drift import (
    NUMERIC,
    PSI_EPSILON,
    RATES,
    compare,
    drift_for_day,
    plot_drift,
    psi,
    reference_window,
)
from plimsoll.observability.features import RequestFeatures, RequestFeatureStore
from plimsoll.observability.policy import DriftPolicy

MODEL = "plimsoll-docs-assistant"
DAY = date(2026, 11, 10)
# The policy's thresholds with a smaller minimum, so a day of 200 synthetic requests has
# enough citations to judge every feature (the shipped minimum, 200 requests, is there to
# keep PSI's sampling noise on quiet days from alarming).
POLICY = DriftPolicy(min_requests=30)
DOCS = [f"doc-{i}" for i in range(300)]
DOC_WEIGHTS = 1 / np.arange(1, len(DOCS) + 1) ** 1.1  # a few popular documents, a long tail
DOC_WEIGHTS /= DOC_WEIGHTS.sum()


def traffic(day: date, n: int, *, seed: int, cyrillic: float = 0.0, chars: float = 60.0,
            abstain: float = 0.10, new_docs: float = 0.0,
            prefix: str = "") -> list[RequestFeatures]:
    """n synthetic requests of one day; each knob moves one feature (and its words)."""
    rng = np.random.default_rng(seed)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    rows = []
    for i in range(n):
        length = max(5, int(rng.normal(chars, chars / 4)))
        in_cyrillic = rng.random() < cyrillic
        citations = int(rng.integers(0, 4))
        doc = (f"new-doc-{rng.integers(10_000)}" if rng.random() < new_docs
               else str(rng.choice(DOCS, p=DOC_WEIGHTS)))
        latency = float(rng.lognormal(3.0, 0.3))
        rows.append(RequestFeatures(
            request_id=f"{prefix}{day.isoformat()}-{i}", at=start + timedelta(seconds=30 * i),
            model=MODEL, model_version="3", route="champion", question_chars=length,
            question_words=max(1, length // 6), latin_share=0.0 if in_cyrillic else 1.0,
            cyrillic_share=1.0 if in_cyrillic else 0.0, cjk_share=0.0, arabic_share=0.0,
            other_share=0.0, oov_rate=float(rng.beta(2, 30)),
            centroid_distance=float(np.clip(rng.normal(0.55, 0.05), 0, 2)),
            top_cited_doc=doc if citations else None, citations=citations,
            answer_chars=int(rng.normal(300, 60)), abstained=bool(rng.random() < abstain),
            refused=bool(rng.random() < 0.02), guard_flagged=bool(rng.random() < 0.05),
            fallback="short_form" if rng.random() < 0.03 else None, latency_ms=latency,
            cpu_ms=latency * 0.8))
    return rows


def week(n: int = 200) -> list[RequestFeatures]:
    start, end = reference_window(DAY, POLICY)
    return [row for k in range((end - start).days + 1)
            for row in traffic(start + timedelta(days=k), n, seed=100 + k)]


def test_psi_matches_a_hand_computation():
    # Deciles of 1..10 are 1.9, 2.8, ..., 9.1: ten bins of one reference value each.
    reference = list(range(1, 11))
    current = [1] * 5 + [10] * 5  # half in the first bin, half in the last, none between
    by_hand = 2 * (0.5 - 0.1) * math.log(0.5 / 0.1) + \
        8 * (PSI_EPSILON - 0.1) * math.log(PSI_EPSILON / 0.1)
    assert psi(reference, current) == pytest.approx(by_hand)
    assert psi(reference, reference) == 0.0
    # A constant reference has three bins: below its value, at it, above it; a move either
    # way counts (an all-Latin week, then a day with Cyrillic questions).
    by_hand = (0.7 - 1) * math.log(0.7) + (0.3 - PSI_EPSILON) * math.log(0.3 / PSI_EPSILON)
    assert psi([0.0] * 10, [0.0] * 7 + [1.0] * 3) == pytest.approx(by_hand)
    assert psi([1.0] * 10, [1.0] * 7 + [0.0] * 3) == pytest.approx(by_hand)


def test_the_reference_window_is_the_days_before():
    assert reference_window(DAY, POLICY) == (date(2026, 11, 3), date(2026, 11, 9))
    assert reference_window(DAY, DriftPolicy(reference_days=1)) == (date(2026, 11, 9),) * 2


def test_a_stable_week_and_a_day_like_it_raise_no_alert():
    report = compare(traffic(DAY, 200, seed=7), week(), POLICY, model=MODEL, day=DAY)
    assert report.judged and report.alerts == ()
    assert {row.name for row in report.rows} == {*NUMERIC, *RATES, "rare_cited_docs"}
    assert report.summary.startswith("within policy: 18 features of 200 requests")
    by_name = {row.name: row for row in report.rows}
    # Measured, not just passed: the statistics are small, and KS is there for information.
    assert by_name["question_chars"].statistic < 0.1
    assert 0 <= by_name["latency_ms"].ks_pvalue <= 1
    assert abs(by_name["abstained"].statistic) < 0.05
    assert abs(by_name["rare_cited_docs"].statistic) < POLICY.rate_delta_alert
    assert by_name["cjk_share"].statistic == 0.0  # never any CJK, on either side


def test_longer_cyrillic_questions_and_more_abstention_alert_exactly_those():
    shifted = traffic(DAY, 200, seed=7, cyrillic=0.5, chars=150, abstain=0.35)
    report = compare(shifted, week(), POLICY, model=MODEL, day=DAY)
    assert {row.name for row in report.alerts} == {
        "question_chars", "question_words", "latin_share", "cyrillic_share", "abstained"}
    by_name = {row.name: row for row in report.rows}
    assert by_name["abstained"].statistic == pytest.approx(
        by_name["abstained"].day_value - by_name["abstained"].reference_value)
    assert by_name["abstained"].statistic > POLICY.rate_delta_alert
    assert by_name["question_chars"].day_value > 2 * by_name["question_chars"].reference_value
    line = by_name["question_chars"].alert_line
    assert line.startswith("ALERT: question_chars drifted: PSI ")
    assert "> 0.25 (drift.psi_alert)" in line and "median" in line
    assert by_name["abstained"].alert_line.startswith("ALERT: abstained drifted: rate change +")
    markdown = report.as_markdown()
    assert "5 of 18 features drifted" in markdown and markdown.count("**ALERT**") == 5


def test_a_drop_in_a_rate_alerts_as_well_as_a_rise():
    report = compare(traffic(DAY, 200, seed=7, abstain=0.0), week(), DriftPolicy(
        rate_delta_alert=0.05), model=MODEL, day=DAY)
    assert [row.name for row in report.alerts] == ["abstained"]
    assert report.alerts[0].statistic < -0.05 and report.alerts[0].day_value == 0.0


def test_citations_moving_to_documents_the_reference_never_cited_alert():
    report = compare(traffic(DAY, 200, seed=7, new_docs=0.4), week(), POLICY, model=MODEL,
                     day=DAY)
    assert [row.name for row in report.alerts] == ["rare_cited_docs"]
    docs = report.alerts[0]
    assert docs.day_value > docs.reference_value + 0.3
    assert docs.alert_line.startswith("ALERT: rare_cited_docs drifted: excess share of rarely "
                                      "cited documents +0.")
    assert "> 0.1 (drift.rate_delta_alert)" in docs.alert_line
    assert report.doc_changes and "doc-0" in {d.doc_id for d in report.doc_changes}


@pytest.mark.parametrize(("day_n", "reference_n"), [(10, 200), (200, 3)])
def test_too_few_requests_are_not_judged_and_say_so(day_n, reference_n):
    reference = week(reference_n)
    report = compare(traffic(DAY, day_n, seed=7, cyrillic=1.0), reference, POLICY,
                     model=MODEL, day=DAY)
    assert not report.judged and report.rows == () and report.alerts == ()
    assert report.summary == (
        f"not judged: {day_n} requests on 2026-11-10 and {len(reference)} in the reference "
        "window 2026-11-03..2026-11-09; at least 30 on each side are needed "
        "(policies/observability.yaml drift.min_requests)")
    assert report.summary in report.as_markdown()


def test_a_feature_the_gateway_could_not_measure_is_not_judged_alone():
    no_vocab = [RequestFeatures(**{**r.__dict__, "oov_rate": None})
                for r in traffic(DAY, 200, seed=7)]
    report = compare(no_vocab, week(), POLICY, model=MODEL, day=DAY)
    oov = next(row for row in report.rows if row.name == "oov_rate")
    assert oov.statistic is None and not oov.alert
    assert oov.note == "not measured (1400 reference, 0 day values)"
    assert report.judged and report.alerts == ()


def test_drift_for_a_day_reads_the_store_and_plots_it(tmp_path):
    store = RequestFeatureStore(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    store.record_many(week())
    store.record_many(traffic(DAY, 200, seed=7, cyrillic=0.5, chars=150, abstain=0.35))
    store.record_many(traffic(DAY + timedelta(days=1), 200, seed=8, chars=500))  # not read
    outcome = drift_for_day(store, MODEL, DAY, POLICY, tmp_path / "plots")
    store.close()
    assert (outcome.report.day_requests, outcome.report.reference_requests) == (200, 1400)
    assert {row.name for row in outcome.report.alerts} == {
        "question_chars", "question_words", "latin_share", "cyrillic_share", "abstained"}
    assert outcome.plot == tmp_path / "plots" / "drift-2026-11-10.png"
    assert outcome.plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_plot_of_a_day_without_a_reference_is_not_drawn(tmp_path):
    store = RequestFeatureStore(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    store.record_many(traffic(DAY, 50, seed=7))
    outcome = drift_for_day(store, MODEL, DAY, POLICY, tmp_path / "plots")
    store.close()
    assert outcome.plot is None and not outcome.report.judged
    assert not (tmp_path / "plots").exists()


def test_plot_of_a_report_that_was_not_judged(tmp_path):
    day, reference = traffic(DAY, 5, seed=7), week(3)
    report = compare(day, reference, POLICY, model=MODEL, day=DAY)
    path = plot_drift(report, reference, day, tmp_path / "drift.png")
    assert path.stat().st_size > 1000
