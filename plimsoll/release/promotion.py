"""Gate, approve, promote and roll back model versions by moving MLflow aliases.

Aliases: `challenger` (passed its gate, awaiting a reviewer), `champion` (serving),
`previous-champion` (the one before). Every move of `champion` is a ledger row.
"""

from __future__ import annotations

import getpass
import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from plimsoll.common.errors import PlimsollError
from plimsoll.release.aliases import AliasBackend, MlflowAliases
from plimsoll.release.gate import Verdict, evaluate_gates
from plimsoll.release.ledger import (
    LedgerConflict,
    LedgerEntry,
    LedgerError,
    PromotionLedger,
    unfinished,
)
from plimsoll.release.lineage_record import LineageRecords, normalise_identity
from plimsoll.release.policy import Policy
from plimsoll.release.registry import (
    DIGEST_TAG,
    LINEAGE_PREFIX,
    RECORDED_PREFIX,
    ModelRegistry,
    RegistryError,
)
from plimsoll.release.review_card import (
    CARD_TAG,
    CardLinks,
    Comparison,
    card_links,
    card_stamp,
    prompt_links,
    render_review_card,
)

CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous-champion"
APPROVAL, APPROVED_BY = "approval", "approval.by"
APPROVAL_VALUES = ("pending", "approved", "rejected")
STATE = "promotion.state"  # promoted | rejected | refused
STATE_REASON = "promotion.reason"
# An intent younger than this may belong to a writer still moving the alias: it is left
# alone. Longer than any bounded MLflow call (10 s timeout, one retry) plus margin.
INTENT_LEASE_S = 120.0


class PromotionError(PlimsollError):
    """A promotion or rollback cannot happen; nothing was changed."""


class MoveInProgress(PromotionError):
    """Another writer has an unfinished move of champion; retry after it completes."""


@dataclass(frozen=True)
class Outcome:
    """What one approval tick did to one version."""

    version: str
    action: str  # promoted | rejected | refused | invalid | completed | reverted
    reason: str


def current_actor() -> str:
    """$PLIMSOLL_ACTOR, else the OS user."""
    return os.environ.get("PLIMSOLL_ACTOR") or getpass.getuser()


class Promoter:
    """The promotion workflow for one registered model."""

    def __init__(self, registry: ModelRegistry | None, ledger: PromotionLedger,
                 policy: Policy | None, model_name: str | None = None,
                 aliases: AliasBackend | None = None, records: LineageRecords | None = None,
                 intent_lease_s: float = INTENT_LEASE_S) -> None:
        self.registry = registry
        self.aliases = aliases or MlflowAliases(registry)
        self.ledger = ledger
        self.policy = policy
        if model_name is None and policy is None:
            raise ValueError("a model name or a policy naming the model is needed")
        self.model = model_name or policy.model
        self.records = records or (registry.records if registry is not None else None) or \
            LineageRecords(ledger.url)
        if registry is not None and registry.records is None:
            registry.records = self.records
        self.intent_lease_s = intent_lease_s

    # -- reading ---------------------------------------------------------------------------
    def _version(self, version: str):
        return self.registry.version(self.model, str(version))

    def alias(self, alias: str) -> str | None:
        """The version an alias points at, or None."""
        return self.aliases.get(self.model, alias)

    def scores(self, version: str) -> dict[str, float]:
        """The eval scores of a version: from its lineage record, else its tags."""
        record = self.records.get(self.model, str(version))
        lineage = record.lineage if record is not None else self.aliases.version_tags(
            self.model, str(version))
        return json.loads(lineage.get(LINEAGE_PREFIX + "eval_scores", "{}"))

    # -- gate ------------------------------------------------------------------------------
    def gate(self, version: str) -> tuple[Verdict, bool]:
        """Evaluate the gates once per version; returns (verdict, newly evaluated)."""
        version = str(version)
        champion = self.alias(CHAMPION)
        verdict = self._verdict(version, champion)
        tags = self._version(version).tags
        if "gate.verdict" in tags:
            return verdict, False
        set_tag = self.registry.set_tag
        set_tag(self.model, version, "gate.reasons", json.dumps(verdict.reasons)[:4900])
        set_tag(self.model, version, "gate.policy_digest", self.policy.digest)
        set_tag(self.model, version, "gate.champion", champion or "none")
        if verdict.passed:
            self.aliases.set(self.model, CHALLENGER, version)
            if APPROVAL not in tags:
                set_tag(self.model, version, APPROVAL, "pending")
        set_tag(self.model, version, "gate.verdict", "pass" if verdict.passed else "fail")
        self.refresh_card(version, best_effort=True)
        return verdict, True

    def _verdict(self, version: str, champion: str | None) -> Verdict:
        return evaluate_gates(self.policy, self.scores(version),
                              self.scores(champion) if champion and champion != version
                              else None)

    # -- approvals -------------------------------------------------------------------------
    def process_approvals(self) -> list[Outcome]:
        """Act on every reviewer decision not yet acted on, oldest version first.

        Unfinished moves of champion are reconciled first. A version another writer is
        promoting at the same moment (two sensor evaluations at once) is left to it.
        """
        outcomes = self.reconcile()
        versions = self.registry.versions(self.model)
        for found in versions:
            tags = dict(found.tags)
            decision = tags.get(APPROVAL)
            if decision in (None, "pending") or STATE in tags:
                continue
            version = str(found.version)
            problem = self._decision_problem(decision, tags.get(APPROVED_BY))
            if problem:
                if tags.get("approval.error") != problem:
                    self.registry.set_tag(self.model, version, "approval.error", problem)
                    outcomes.append(Outcome(version, "invalid", problem))
                continue
            try:
                if decision == "rejected":
                    outcomes.append(self._reject(version, tags))
                else:
                    outcomes.append(self._approve(version, tags))
            except (LedgerConflict, MoveInProgress):
                continue  # another writer is acting on this version; its result stands
        self.refresh_stale_cards(versions)
        return outcomes

    def _decision_problem(self, decision: str, reviewer: str | None) -> str | None:
        """Why a reviewer decision cannot be acted on yet (the reviewer can fix it), or None."""
        if decision not in APPROVAL_VALUES:
            return (f"unknown approval value '{decision}': set approval to 'approved' or "
                    "'rejected'")
        if not normalise_identity(reviewer):
            return (f"approval '{decision}' names no reviewer: set the tag {APPROVED_BY} to "
                    "your name (it is checked against the trainer and the approvers)")
        return None

    def _reject(self, version: str, tags: dict[str, str]) -> Outcome:
        reviewer = tags[APPROVED_BY].strip()
        self._drop_challenger(version)
        self.ledger.append(model=self.model, from_version=self.alias(CHAMPION),
                           to_version=version, action="reject", actor=reviewer,
                           reason="rejected by reviewer", lineage_digest=tags.get(DIGEST_TAG, ""))
        self._finish(version, "rejected", f"rejected by {reviewer}")
        return Outcome(version, "rejected", f"rejected by {reviewer}")

    def _approve(self, version: str, tags: dict[str, str]) -> Outcome:
        problems = []
        if tags.get("gate.verdict") != "pass":
            problems.append(f"its gate verdict is '{tags.get('gate.verdict', 'missing')}', "
                            "not 'pass'")
        verification = self.registry.verify(self.model, version)
        problems += verification.problems
        reviewer = tags[APPROVED_BY].strip()
        problems += self._reviewer_problems(version, reviewer)
        champion = self.alias(CHAMPION)
        if champion != version:
            # The gate again, against the champion of now: it may have changed since.
            failed = [r.reason for r in self._verdict(version, champion).results
                      if r.status == "fail"]
            if failed:
                problems.append(f"the gate against the current champion "
                                f"(v{champion or 'none'}) fails: " + "; ".join(failed))
        if problems:
            reason = "not promoted: " + "; ".join(problems)
            self._drop_challenger(version)
            self._finish(version, "refused", reason)
            return Outcome(version, "refused", reason)
        entry = self._move_champion(version, action="promote", actor=reviewer,
                                    reason=f"approved by {reviewer}",
                                    digest=tags.get(DIGEST_TAG, ""))
        self._drop_challenger(version)
        self._finish(version, "promoted", f"champion since ledger entry {entry.entry_id}")
        return Outcome(version, "promoted", entry.reason)

    def _reviewer_problems(self, version: str, reviewer: str) -> list[str]:
        """Self-approval (against the recorded trainers) and the policy's approvers."""
        problems = []
        name = normalise_identity(reviewer)
        record = self.records.get(self.model, version)
        trainers = set(record.trainers) if record is not None else set()
        if name in trainers:
            problems.append(f"self-approval: {reviewer} trained this version and cannot "
                            "approve it")
        approvers = self.policy.approval.approvers if self.policy is not None else []
        if approvers and name not in {normalise_identity(a) for a in approvers}:
            problems.append(f"{reviewer} is not an approver in the policy "
                            f"(approval.approvers in {self.policy.path})")
        return problems

    def _finish(self, version: str, state: str, reason: str) -> None:
        self.registry.set_tag(self.model, version, STATE_REASON, reason[:4900])
        self.registry.set_tag(self.model, version, STATE, state)  # last: marks it done
        self.refresh_card(version, best_effort=True)

    # -- the review card (the version's description) -----------------------------------------
    def refresh_card(self, version: str, *, best_effort: bool = False) -> bool:
        """Render the version's review card for its state now; True when it was rewritten.

        The card is for people and the tags stay the record, so `best_effort` leaves a card
        the store refused to the next approval tick, which renders every card whose stamp
        is out of date (its state moved on, or someone edited it by hand).
        """
        if self.policy is None:
            return False
        try:
            found = self._version(version)
            tags = dict(found.tags)
            description = self._card(str(version), tags)
            if description == (found.description or "") and \
                    tags.get(CARD_TAG) == card_stamp(tags, description):
                return False
            self.registry.set_description(self.model, str(version), description)
            self.registry.set_tag(self.model, str(version), CARD_TAG,
                                  card_stamp(tags, description))
            return True
        except RegistryError:
            if best_effort:
                return False
            raise

    def _card(self, version: str, tags: dict[str, str]) -> str:
        record = self.records.get(self.model, version)
        lineage = {**tags, **(record.lineage if record is not None else {})}
        gated_against = tags.get("gate.champion")
        champion = (None if gated_against == "none" else gated_against) if gated_against \
            else self.alias(CHAMPION)
        if champion == version:
            champion = None
        comparison = Comparison(champion, self.scores(champion) if champion else {})
        verdict = evaluate_gates(self.policy, self.scores(version), comparison.champion or None)
        links = card_links(self.registry, lineage.get(LINEAGE_PREFIX + "mlflow_run_id", ""))
        return render_review_card(model=self.model, version=version, lineage=lineage,
                                  tags=tags, policy=self.policy, verdict=verdict,
                                  comparison=comparison,
                                  links=CardLinks(links.run, prompt_links(lineage)))

    def refresh_stale_cards(self, versions: list | None = None) -> list[str]:
        """Render again every card whose stamp is out of date; returns the versions rewritten."""
        rewritten = []
        for found in versions if versions is not None else self.registry.versions(self.model):
            tags = dict(found.tags)
            if tags.get(CARD_TAG) != card_stamp(tags, found.description) and \
                    self.refresh_card(str(found.version), best_effort=True):
                rewritten.append(str(found.version))
        return rewritten

    def _drop_challenger(self, version: str) -> None:
        if self.alias(CHALLENGER) == version:
            self.aliases.delete(self.model, CHALLENGER)

    # -- moving champion: intent, alias, completion ------------------------------------------
    def reconcile(self) -> list[Outcome]:
        """Finish or revert moves of champion a dead or failed writer left unfinished.

        An intent whose alias already moved is completed. One whose alias never moved is
        reverted once its lease has passed (before that its writer may still be moving it,
        and MoveInProgress says so).
        """
        outcomes = []
        for intent in self.ledger.open_intents(self.model):
            current = self.alias(CHAMPION)
            age = (datetime.now(UTC) - _aware(intent.at)).total_seconds()
            if current == intent.to_version:
                status, note = "done", (f"completed on reconcile: champion was already at "
                                        f"v{current}")
            elif age >= self.intent_lease_s:
                status, note = "reverted", (f"reverted on reconcile: the alias never moved "
                                            f"(champion is v{current or 'none'})")
            else:
                raise MoveInProgress(
                    f"another move of champion is in progress: ledger entry "
                    f"{intent.entry_id}, {intent.action} v{intent.from_version or '-'} → "
                    f"v{intent.to_version} by {intent.actor}, {age:.0f}s ago",
                    field="champion", fix=f"retry in {self.intent_lease_s - age:.0f}s; "
                    "nothing was changed")
            self._complete(intent, status, note)
            outcomes.append(Outcome(intent.to_version, "completed" if status == "done"
                                    else "reverted", f"ledger entry {intent.entry_id}: {note}"))
        return outcomes

    def _complete(self, intent: LedgerEntry, status: str, note: str) -> LedgerEntry:
        try:
            return self.ledger.append(
                model=self.model, from_version=intent.from_version,
                to_version=intent.to_version, action=intent.action, actor=intent.actor,
                reason=f"{intent.reason} ({note})" if note else intent.reason,
                lineage_digest=intent.lineage_digest, status=status,
                completes=intent.entry_id)
        except LedgerConflict:
            # Someone else completed it first (or appended after it): read what they wrote.
            for row in self.ledger.rows(self.model):
                if row.completes == intent.entry_id:
                    return row
            raise

    def _move_champion(self, version: str, *, action: str, actor: str, reason: str,
                       digest: str) -> LedgerEntry:
        """Intent in the ledger, then previous-champion and champion, then completion.

        Nothing moves unless the intent was written: a ledger that cannot be written, or
        another writer that appended first, stops the move before any alias changes. A
        failure after the alias moved is completed by the next reconcile.
        """
        rows = self._settled_rows()
        head = rows[-1].entry_id if rows else 0
        current = self.alias(CHAMPION)
        moves = [r for r in rows if r.status == "done" and r.action in ("promote", "rollback")]
        last = moves[-1] if moves else None
        if current == version and last is not None and last.to_version == version and \
                last.action == action:
            return last  # a retry of a move that already completed
        source = current if current != version else self.alias(PREVIOUS)
        try:
            intent = self.ledger.append(model=self.model, from_version=source,
                                        to_version=version, action=action, actor=actor,
                                        reason=reason, lineage_digest=digest,
                                        status="intent", after=head)
        except LedgerError as exc:
            if isinstance(exc, LedgerConflict):
                raise  # another writer decided first; the caller re-reads
            raise PromotionError(f"the promotion ledger cannot be written, so champion was "
                                 f"not moved ({exc.problem})", file=exc.file, field="ledger",
                                 fix=exc.fix or "make the ledger writable and retry") from None
        started = time.monotonic()
        try:
            if current is not None and current != version:
                self.aliases.set(self.model, PREVIOUS, current)
            if self.intent_lease_s and time.monotonic() - started > self.intent_lease_s / 2:
                # Past half its lease another writer may soon revert the intent: stop here.
                raise PromotionError("the registry answered too slowly to move champion "
                                     "safely", field="champion", fix="retry; nothing moved")
            self.aliases.set(self.model, CHAMPION, version)
        except BaseException:
            self._settle(intent)
            raise
        try:
            return self._complete(intent, "done", "")
        except LedgerError as exc:
            raise PromotionError(
                f"champion moved to v{version}, but the ledger could not record it as done "
                f"({exc.problem})", field="ledger", fix="the next `plimsoll rollback`, "
                f"`plimsoll status` or approval tick completes ledger entry "
                f"{intent.entry_id}; make the ledger writable") from None

    def _settled_rows(self) -> list[LedgerEntry]:
        """The ledger's rows, read at once, with no intent left open.

        The decision to move is made on these rows and holds only if nothing is appended
        after the last of them: the intent is appended `after` it, so a writer that got in
        between turns ours into a LedgerConflict.
        """
        for _attempt in range(3):
            rows = self.ledger.rows(self.model)
            if not unfinished(rows):
                return rows
            self.reconcile()  # completes, reverts, or raises MoveInProgress
        raise MoveInProgress("the promotion ledger keeps changing under this move",
                             field="champion", fix="retry in a minute; nothing was changed")

    def _settle(self, intent: LedgerEntry) -> None:
        """After a failed alias move: record what happened if it can be known now."""
        try:
            current = self.alias(CHAMPION)
        except Exception:  # the registry is down: the next reconcile decides
            return
        if current == intent.to_version:
            self._complete(intent, "done", "completed: the alias moved before the error")
        elif current == intent.from_version:
            self._complete(intent, "reverted", "reverted: the alias move failed")

    # -- rollback --------------------------------------------------------------------------
    def rollback(self, to_version: str | None = None, actor: str | None = None,
                 reason: str = "rollback") -> LedgerEntry:
        """Move champion back along the ledger (or to a given earlier champion)."""
        self.reconcile()
        current = self.alias(CHAMPION)
        if current is None:
            raise PromotionError(f"{self.model} has no champion", field="champion",
                                 fix="nothing to roll back; promote a version first")
        moves = self.ledger.moves(self.model)
        if to_version is None:
            # Back along the promotions: the champion that the current one replaced.
            made_current = [e for e in moves if e.action == "promote" and e.to_version == current]
            target = made_current[-1].from_version if made_current else None
            if target is None:
                raise PromotionError(
                    f"version {current} is the first champion: there is no previous champion",
                    field="--to", fix="nothing changed; pass --to VERSION to choose one")
        else:
            target = str(to_version).strip().removeprefix("v")
            if target == current:
                raise PromotionError(f"version {target} is already the champion",
                                     field="--to", fix="pick an earlier champion")
            if target not in {e.to_version for e in moves}:
                raise PromotionError(f"version {target} has never been champion",
                                     field="--to", fix="roll back only to a version listed "
                                     "by `plimsoll history`")
        tags = self.aliases.version_tags(self.model, target)
        _record, problems = self.records.check(self.model, target, {
            k: v for k, v in tags.items() if k.startswith(RECORDED_PREFIX)}, RECORDED_PREFIX)
        if problems:
            raise PromotionError(f"version {target}'s lineage does not match its record: "
                                 + "; ".join(problems), field="--to",
                                 fix=f"run `plimsoll verify {target}`; pick another version; "
                                 "nothing changed")
        return self._move_champion(target, action="rollback", actor=actor or current_actor(),
                                   reason=reason, digest=tags.get(DIGEST_TAG, ""))


def _aware(at: datetime) -> datetime:
    """SQLite hands back naive datetimes for what was written in UTC."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
