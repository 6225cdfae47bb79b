"""Drift: one day of request features against the days before it (policies/observability.yaml).

Alarms are on change, not on levels: a numeric feature alarms when its distribution moved
(population stability index over the reference's deciles), a rate when it moved by more than
`drift.rate_delta_alert` in absolute terms, and the cited documents when the day sends more
of its citations to documents the reference (almost) never cited than the reference itself
predicts. The two-sample Kolmogorov-Smirnov statistic and p-value are shown beside each
PSI for information; with thousands of requests a day they call every wobble significant,
so they do not alarm. A day, or a reference window, with fewer than `drift.min_requests`
requests is not judged, and the report says so with the counts.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from plimsoll.observability.features import RequestFeatures, RequestFeatureStore
from plimsoll.observability.policy import DriftPolicy

# Numeric features, compared by PSI (plus KS for information).
NUMERIC = ("question_chars", "question_words", "oov_rate", "centroid_distance",
           "answer_chars", "citations", "latency_ms", "latin_share", "cyrillic_share",
           "cjk_share", "arabic_share", "other_share")
# Rates, compared by their absolute change.
RATES: dict[str, Callable[[RequestFeatures], bool]] = {
    "abstained": lambda r: r.abstained,
    "refused": lambda r: r.refused,
    "guard_flagged": lambda r: r.guard_flagged,
    "fallback": lambda r: r.fallback is not None,
    "has_citation": lambda r: r.citations > 0,
}
DOCS = "rare_cited_docs"
PSI_EPSILON = 1e-4  # the least share a bin is given, so an empty bin keeps PSI finite
# Rows compared per side at most: deciles, rates and KS are as good from a spread-out sample
# of this size as from every request of a busy week, which would not fit in memory.
SAMPLE = 50_000
DOC_CHANGES = 5  # documents listed whose share of the citations moved the most
POLICY_FIELDS = {"psi": "drift.psi_alert", "rate_delta": "drift.rate_delta_alert",
                 "good_turing_delta": "drift.rate_delta_alert"}


def decile_edges(reference: np.ndarray) -> np.ndarray:
    """The distinct inner deciles (10%..90%) of the reference: the PSI bin edges."""
    return np.unique(np.quantile(reference, np.linspace(0.1, 0.9, 9)))


def psi(reference: Sequence[float], current: Sequence[float]) -> float:
    """Population stability index of `current` against `reference`.

    Bins: the reference's distinct inner deciles (10%..90%) split its range [min, max], each
    bin closed on the right: [min, q10], (q10, q20], ..., (q90, max]; values below the
    reference's minimum and above its maximum get a bin each, so a move outside what the
    reference ever saw always counts. A discrete or constant feature gets fewer bins (a
    constant c gives three: below c, c, above c). Each bin's share on either side is floored
    at PSI_EPSILON (1e-4), without renormalising, and
    PSI = sum over bins of (current - reference) * ln(current / reference).
    """
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    edges = decile_edges(ref)
    low, high = float(ref.min()), float(ref.max())
    bins = len(edges) + 3

    def shares(values: np.ndarray) -> np.ndarray:
        index = np.searchsorted(edges, values, side="left") + 1
        index[values < low] = 0
        index[values > high] = bins - 1
        return np.maximum(np.bincount(index, minlength=bins) / len(values), PSI_EPSILON)

    ref_share, cur_share = shares(ref), shares(cur)
    return float(np.sum((cur_share - ref_share) * np.log(cur_share / ref_share)))


@dataclass(frozen=True)
class DriftRow:
    """One feature's comparison: the test, its statistic, the threshold and the verdict."""

    name: str
    test: str  # "psi", "rate_delta" or "good_turing_delta"
    statistic: float | None  # None: not measured (too few values on a side)
    threshold: float
    alert: bool
    reference_value: float | None  # `measure` of the feature over the reference window
    day_value: float | None  # the same, over the day
    measure: str = "median"  # "median", "mean" (script shares) or "share" (rates)
    ks_statistic: float | None = None  # numeric features only, for information
    ks_pvalue: float | None = None
    note: str = ""

    @property
    def alert_line(self) -> str:
        """The line the check logs for a drifted feature."""
        what = {"psi": "PSI", "rate_delta": "rate change",
                "good_turing_delta": "excess share of rarely cited documents"}[self.test]
        # A rate alarms either way; PSI is never negative; the rarely-cited share alarms
        # only when it grows.
        bound = f"beyond ±{self.threshold:g}" if self.test == "rate_delta" else \
            f"> {self.threshold:g}"
        value = f"{self.statistic:.3f}" if self.test == "psi" else f"{self.statistic:+.3f}"
        line = (f"ALERT: {self.name} drifted: {what} {value} {bound} "
                f"({POLICY_FIELDS[self.test]})")
        if self.reference_value is not None and self.day_value is not None:
            line += (f"; {self.measure} {_number(self.reference_value)} in the reference, "
                     f"{_number(self.day_value)} on the day")
        return line


@dataclass(frozen=True)
class DocShift:
    """A document whose share of the top citations moved between the reference and the day."""

    doc_id: str
    reference_share: float
    day_share: float


@dataclass(frozen=True)
class DriftReport:
    """One day of one model's traffic against its reference window."""

    model: str
    day: date
    reference_start: date
    reference_end: date  # the last reference day, inclusive
    day_requests: int
    reference_requests: int
    min_requests: int
    rows: tuple[DriftRow, ...] = ()
    doc_changes: tuple[DocShift, ...] = ()

    @property
    def judged(self) -> bool:
        """Whether both sides had enough requests to be compared."""
        return min(self.day_requests, self.reference_requests) >= self.min_requests

    @property
    def alerts(self) -> tuple[DriftRow, ...]:
        """The rows that drifted beyond the policy."""
        return tuple(row for row in self.rows if row.alert)

    @property
    def window(self) -> str:
        """The reference window, for messages."""
        return f"{self.reference_start.isoformat()}..{self.reference_end.isoformat()}"

    @property
    def summary(self) -> str:
        """One line: not judged (with the counts), within policy, or what drifted."""
        if not self.judged:
            return (f"not judged: {self.day_requests} requests on {self.day.isoformat()} and "
                    f"{self.reference_requests} in the reference window {self.window}; at "
                    f"least {self.min_requests} on each side are needed "
                    "(policies/observability.yaml drift.min_requests)")
        if not self.alerts:
            return (f"within policy: {len(self.rows)} features of {self.day_requests} requests "
                    f"on {self.day.isoformat()} against {self.reference_requests} in "
                    f"{self.window}")
        return (f"{len(self.alerts)} of {len(self.rows)} features drifted on "
                f"{self.day.isoformat()}: " + ", ".join(row.name for row in self.alerts))

    def as_markdown(self) -> str:
        """The report for the asset's metadata: the verdict, one row per feature, documents."""
        lines = [f"**{self.model}, {self.day.isoformat()}** against {self.window}: "
                 f"{self.summary}"]
        if not self.rows:
            return lines[0]
        lines += ["", "| feature | test | statistic | threshold | reference | day | KS | "
                  "KS p | alert |", "|---|---|---|---|---|---|---|---|---|"]
        for row in sorted(self.rows, key=lambda r: (not r.alert, r.name)):
            lines.append("| " + " | ".join((
                row.name, row.test, _number(row.statistic), f"{row.threshold:g}",
                _number(row.reference_value), _number(row.day_value),
                _number(row.ks_statistic), _number(row.ks_pvalue),
                "**ALERT**" if row.alert else (row.note or "ok"))) + " |")
        if self.doc_changes:
            lines += ["", "Documents whose share of the top citations moved most:", "",
                      "| doc | reference | day |", "|---|---|---|"]
            lines += [f"| {d.doc_id} | {d.reference_share:.1%} | {d.day_share:.1%} |"
                      for d in self.doc_changes]
        return "\n".join(lines)


def _number(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"


def reference_window(day: date, policy: DriftPolicy) -> tuple[date, date]:
    """The first and last (inclusive) reference day of `day`: the reference_days before it."""
    return day - timedelta(days=policy.reference_days), day - timedelta(days=1)


def compare(day_rows: Sequence[RequestFeatures], reference_rows: Sequence[RequestFeatures],
            policy: DriftPolicy, *, model: str, day: date) -> DriftReport:
    """The drift report of `day_rows` against `reference_rows`, judged by `policy`."""
    start, end = reference_window(day, policy)
    report = DriftReport(model=model, day=day, reference_start=start, reference_end=end,
                         day_requests=len(day_rows), reference_requests=len(reference_rows),
                         min_requests=policy.min_requests)
    if not report.judged:
        return report
    rows = [_numeric_row(name, reference_rows, day_rows, policy) for name in NUMERIC]
    rows += [_rate_row(name, test, reference_rows, day_rows, policy)
             for name, test in RATES.items()]
    docs_row, changes = _docs(reference_rows, day_rows, policy)
    rows.append(docs_row)
    return DriftReport(model=model, day=day, reference_start=start, reference_end=end,
                       day_requests=len(day_rows), reference_requests=len(reference_rows),
                       min_requests=policy.min_requests, rows=tuple(rows),
                       doc_changes=changes)


def _values(rows: Sequence[RequestFeatures], name: str) -> np.ndarray:
    return np.array([v for v in (getattr(r, name) for r in rows) if v is not None],
                    dtype=np.float64)


def _numeric_row(name: str, reference_rows: Sequence[RequestFeatures],
                 day_rows: Sequence[RequestFeatures], policy: DriftPolicy) -> DriftRow:
    from scipy.stats import ks_2samp

    ref, cur = _values(reference_rows, name), _values(day_rows, name)
    # A share is 0 or 1 for most questions, so its median says nothing; its mean does.
    measure = "mean" if name.endswith("_share") else "median"
    centre = np.mean if measure == "mean" else np.median
    # Optional features (no vocabulary, no centroid) are measured on the rows that have them.
    if min(len(ref), len(cur)) < policy.min_requests:
        return DriftRow(name=name, test="psi", statistic=None, threshold=policy.psi_alert,
                        alert=False, reference_value=float(centre(ref)) if len(ref) else None,
                        day_value=float(centre(cur)) if len(cur) else None, measure=measure,
                        note=f"not measured ({len(ref)} reference, {len(cur)} day values)")
    statistic = psi(ref, cur)
    ks = ks_2samp(ref, cur)
    return DriftRow(name=name, test="psi", statistic=statistic, threshold=policy.psi_alert,
                    alert=statistic > policy.psi_alert, reference_value=float(centre(ref)),
                    day_value=float(centre(cur)), measure=measure,
                    ks_statistic=float(ks.statistic),
                    ks_pvalue=float(ks.pvalue))


def _rate_row(name: str, test: Callable[[RequestFeatures], bool],
              reference_rows: Sequence[RequestFeatures], day_rows: Sequence[RequestFeatures],
              policy: DriftPolicy) -> DriftRow:
    ref = sum(map(test, reference_rows)) / len(reference_rows)
    cur = sum(map(test, day_rows)) / len(day_rows)
    delta = cur - ref
    return DriftRow(name=name, test="rate_delta", statistic=delta,
                    threshold=policy.rate_delta_alert,
                    alert=abs(delta) > policy.rate_delta_alert, reference_value=ref,
                    day_value=cur, measure="share")


def _docs(reference_rows: Sequence[RequestFeatures], day_rows: Sequence[RequestFeatures],
          policy: DriftPolicy) -> tuple[DriftRow, tuple[DocShift, ...]]:
    """How much more of the day's citations go to documents the reference cited at most once.

    The expected share under no drift is the Good-Turing estimate from the reference itself:
    a new citation goes to a document seen once with probability 2·n2/N and to one never seen
    with n1/N (n_k: documents cited k times, N: citations in the reference). A long tail of
    documents is normal; more of the day in it than the tail predicts is not.
    """
    ref = Counter(r.top_cited_doc for r in reference_rows if r.top_cited_doc is not None)
    cur = Counter(r.top_cited_doc for r in day_rows if r.top_cited_doc is not None)
    n_ref, n_cur = sum(ref.values()), sum(cur.values())
    if min(n_ref, n_cur) < policy.min_requests:
        return DriftRow(name=DOCS, test="good_turing_delta", statistic=None,
                        threshold=policy.rate_delta_alert, alert=False, reference_value=None,
                        day_value=None, note=f"not measured ({n_ref} reference, {n_cur} day "
                        "citations)"), ()
    seen = Counter(ref.values())
    expected = min(1.0, (seen[1] + 2 * seen[2]) / n_ref)
    rare = sum(count for doc, count in cur.items() if ref[doc] <= 1) / n_cur
    delta = rare - expected
    shifts = [DocShift(doc, ref[doc] / n_ref, cur[doc] / n_cur) for doc in set(ref) | set(cur)]
    shifts.sort(key=lambda s: (-abs(s.day_share - s.reference_share), s.doc_id))
    return DriftRow(name=DOCS, test="good_turing_delta", statistic=delta,
                    threshold=policy.rate_delta_alert, alert=delta > policy.rate_delta_alert,
                    reference_value=expected, day_value=rare, measure="share"
                    ), tuple(shifts[:DOC_CHANGES])


@dataclass(frozen=True)
class DriftOutcome:
    """A day's drift report and, when both sides had requests, its plot."""

    report: DriftReport
    plot: Path | None


def drift_for_day(store: RequestFeatureStore, model: str, day: date, policy: DriftPolicy,
                  plots_dir: Path) -> DriftOutcome:
    """Read the day and its reference window from the store, compare them, plot them.

    The request counts in the report are those compared: at most SAMPLE a side.
    """
    start, end = reference_window(day, policy)
    reference_rows = store.read(model, start, end + timedelta(days=1), sample=SAMPLE)
    day_rows = store.read(model, day, day + timedelta(days=1), sample=SAMPLE)
    report = compare(day_rows, reference_rows, policy, model=model, day=day)
    plot = None
    if day_rows and reference_rows:
        plot = plot_drift(report, reference_rows, day_rows,
                          plots_dir / f"drift-{day.isoformat()}.png")
    return DriftOutcome(report, plot)


PLOTTED = 5  # numeric features drawn: every alert first, then the largest PSI


def plot_drift(report: DriftReport, reference_rows: Sequence[RequestFeatures],
               day_rows: Sequence[RequestFeatures], destination: Path) -> Path:
    """A PNG of reference vs day: the alerting (else most moved) numeric features and the rates."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    numeric = [r for r in report.rows if r.test == "psi" and r.statistic is not None]
    numeric.sort(key=lambda r: (not r.alert, -r.statistic))
    names = [r.name for r in numeric[:PLOTTED]] or ["question_chars", "latency_ms"]
    by_name = {r.name: r for r in report.rows}
    panels = len(names) + 1
    columns = min(panels, 3)
    figure, axes = plt.subplots(math.ceil(panels / columns), columns,
                                figsize=(4 * columns, 3 * math.ceil(panels / columns)), dpi=80,
                                squeeze=False)
    flat = list(axes.ravel())
    for axis, name in zip(flat, names, strict=False):
        ref, cur = _values(reference_rows, name), _values(day_rows, name)
        both = np.concatenate([ref, cur])
        edges = np.histogram_bin_edges(both, bins=30) if len(both) else 10
        if len(ref):
            axis.hist(ref, bins=edges, density=True, histtype="step", label="reference")
        if len(cur):
            axis.hist(cur, bins=edges, density=True, histtype="step", label=report.day.isoformat())
        row = by_name.get(name)
        title = name if row is None or row.statistic is None else (
            f"{name}: PSI {row.statistic:.2f}" + (" ALERT" if row.alert else ""))
        axis.set_title(title, color="red" if row is not None and row.alert else "black",
                       fontsize="medium")
        axis.legend(fontsize="x-small")
    rates = flat[len(names)]
    labels = list(RATES)
    ref_rates = [sum(map(RATES[n], reference_rows)) / max(len(reference_rows), 1) for n in labels]
    day_rates = [sum(map(RATES[n], day_rows)) / max(len(day_rows), 1) for n in labels]
    positions = np.arange(len(labels))
    rates.bar(positions - 0.2, ref_rates, 0.4, label="reference")
    rates.bar(positions + 0.2, day_rates, 0.4, label=report.day.isoformat())
    rates.set_xticks(positions, labels, rotation=30, fontsize="x-small")
    alerting = [n for n in labels if n in by_name and by_name[n].alert]
    rates.set_title("rates" + (f" ALERT: {', '.join(alerting)}" if alerting else ""),
                    color="red" if alerting else "black", fontsize="medium")
    rates.legend(fontsize="x-small")
    for axis in flat[panels:]:
        axis.set_visible(False)
    figure.suptitle(f"{report.model}: {report.day.isoformat()} against {report.window}")
    figure.tight_layout()
    destination.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(destination)
    plt.close(figure)
    return destination
