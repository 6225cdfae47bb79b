"""Gate, approve, promote and roll back model versions by moving MLflow aliases.

Aliases: `challenger` (passed its gate, awaiting a reviewer), `champion` (serving),
`previous-champion` (the one before). Every move of `champion` is a ledger row.
"""

from __future__ import annotations

import getpass
import json
import os
from dataclasses import dataclass

from plimsoll.alias_store import AliasBackend, MlflowAliases
from plimsoll.errors import PlimsollError
from plimsoll.gate import Verdict, evaluate_gates
from plimsoll.ledger import LedgerEntry, PromotionLedger
from plimsoll.policy import Policy
from plimsoll.registry import DIGEST_TAG, LINEAGE_PREFIX, ModelRegistry, lineage_digest

CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous-champion"
APPROVAL, APPROVED_BY = "approval", "approval.by"
APPROVAL_VALUES = ("pending", "approved", "rejected")
STATE = "promotion.state"  # promoted | rejected | refused
STATE_REASON = "promotion.reason"


class PromotionError(PlimsollError):
    """A promotion or rollback cannot happen; nothing was changed."""


@dataclass(frozen=True)
class Outcome:
    """What one approval tick did to one version."""

    version: str
    action: str  # promoted | rejected | refused | invalid
    reason: str


def current_actor() -> str:
    """$PLIMSOLL_ACTOR, else the OS user."""
    return os.environ.get("PLIMSOLL_ACTOR") or getpass.getuser()


class Promoter:
    """The promotion workflow for one registered model."""

    def __init__(self, registry: ModelRegistry | None, ledger: PromotionLedger, policy: Policy,
                 model_name: str | None = None, aliases: AliasBackend | None = None) -> None:
        self.registry = registry
        self.client = registry.client if registry is not None else None
        self.aliases = aliases or MlflowAliases(registry)
        self.ledger = ledger
        self.policy = policy
        self.model = model_name or policy.model

    # -- reading ---------------------------------------------------------------------------
    def _version(self, version: str):
        return self.registry.call(self.client.get_model_version, self.model, str(version))

    def alias(self, alias: str) -> str | None:
        """The version an alias points at, or None."""
        return self.aliases.get(self.model, alias)

    def scores(self, version: str) -> dict[str, float]:
        """The eval scores recorded in a version's lineage."""
        tags = self._version(version).tags
        return json.loads(tags.get(LINEAGE_PREFIX + "eval_scores", "{}"))

    # -- gate ------------------------------------------------------------------------------
    def gate(self, version: str) -> tuple[Verdict, bool]:
        """Evaluate the gates once per version; returns (verdict, newly evaluated)."""
        version = str(version)
        champion = self.alias(CHAMPION)
        verdict = evaluate_gates(self.policy, self.scores(version),
                                 self.scores(champion) if champion and champion != version
                                 else None)
        tags = self._version(version).tags
        if "gate.verdict" in tags:
            return verdict, False
        set_tag = self.registry.set_tag
        set_tag(self.model, version, "gate.reasons", json.dumps(verdict.reasons)[:4900])
        set_tag(self.model, version, "gate.policy_digest", self.policy.digest)
        set_tag(self.model, version, "gate.champion", champion or "none")
        if verdict.passed:
            self.registry.call(self.client.set_registered_model_alias, self.model,
                                 CHALLENGER, version)
            if APPROVAL not in tags:
                set_tag(self.model, version, APPROVAL, "pending")
        set_tag(self.model, version, "gate.verdict", "pass" if verdict.passed else "fail")
        return verdict, True

    # -- approvals -------------------------------------------------------------------------
    def process_approvals(self) -> list[Outcome]:
        """Act on every reviewer decision not yet acted on, oldest version first."""
        versions = self.registry.call(self.client.search_model_versions,
                                        f"name = '{self.model}'")
        outcomes = []
        for found in sorted(versions, key=lambda v: int(v.version)):
            tags = dict(found.tags)
            decision = tags.get(APPROVAL)
            if decision in (None, "pending") or STATE in tags:
                continue
            version = str(found.version)
            if decision not in APPROVAL_VALUES:
                message = (f"unknown approval value '{decision}': set approval to "
                           "'approved' or 'rejected'")
                if tags.get("approval.error") != message:
                    self.registry.set_tag(self.model, version, "approval.error", message)
                    outcomes.append(Outcome(version, "invalid", message))
                continue
            if decision == "rejected":
                outcomes.append(self._reject(version, tags))
            else:
                outcomes.append(self._approve(version, tags))
        return outcomes

    def _reject(self, version: str, tags: dict[str, str]) -> Outcome:
        reviewer = tags.get(APPROVED_BY, "unknown")
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
        reviewer = tags.get(APPROVED_BY)
        trainer = tags.get(LINEAGE_PREFIX + "trained_by")
        if reviewer and trainer and reviewer == trainer:
            problems.append(f"self-approval: {reviewer} trained this version and cannot "
                            "approve it")
        if problems:
            reason = "not promoted: " + "; ".join(problems)
            self._drop_challenger(version)
            self._finish(version, "refused", reason)
            return Outcome(version, "refused", reason)
        entry = self._move_champion(version, action="promote", actor=reviewer or "unknown",
                                    reason=f"approved by {reviewer or 'unknown reviewer'}",
                                    digest=tags.get(DIGEST_TAG, ""))
        self._drop_challenger(version)
        self._finish(version, "promoted", f"champion since ledger entry {entry.entry_id}")
        return Outcome(version, "promoted", entry.reason)

    def _finish(self, version: str, state: str, reason: str) -> None:
        self.registry.set_tag(self.model, version, STATE_REASON, reason[:4900])
        self.registry.set_tag(self.model, version, STATE, state)  # last: marks it done

    def _drop_challenger(self, version: str) -> None:
        if self.alias(CHALLENGER) == version:
            self.registry.call(self.client.delete_registered_model_alias, self.model,
                                 CHALLENGER)

    def _move_champion(self, version: str, *, action: str, actor: str, reason: str,
                       digest: str) -> LedgerEntry:
        """previous-champion first, then champion, then the ledger row.

        A failure between steps leaves `champion` where it was or already moved, never
        half-way; the next attempt completes the move and the ledger gets one row.
        """
        current = self.alias(CHAMPION)
        last = next(iter(reversed(self.ledger.entries(self.model))), None)
        if current == version and last is not None and last.to_version == version and \
                last.action == action:
            return last  # a retry of a move that already completed
        source = current if current != version else self.alias(PREVIOUS)
        if current is not None and current != version:
            self.aliases.set(self.model, PREVIOUS, current)
        self.aliases.set(self.model, CHAMPION, version)
        return self.ledger.append(model=self.model, from_version=source, to_version=version,
                                  action=action, actor=actor, reason=reason,
                                  lineage_digest=digest)

    # -- rollback --------------------------------------------------------------------------
    def rollback(self, to_version: str | None = None, actor: str | None = None,
                 reason: str = "rollback") -> LedgerEntry:
        """Move champion back along the ledger (or to a given earlier champion)."""
        current = self.alias(CHAMPION)
        if current is None:
            raise PromotionError(f"{self.model} has no champion", field="champion",
                                 fix="nothing to roll back; promote a version first")
        history = self.ledger.entries(self.model)
        moves = [e for e in history if e.action in ("promote", "rollback")]
        if to_version is None:
            # Back along the promotions: the champion that the current one replaced.
            made_current = [e for e in moves if e.action == "promote" and e.to_version == current]
            target = made_current[-1].from_version if made_current else None
            if target is None:
                raise PromotionError(
                    f"version {current} is the first champion: there is no previous champion",
                    field="--to", fix="nothing changed; pass --to VERSION to choose one")
        else:
            target = str(to_version)
            if target == current:
                raise PromotionError(f"version {target} is already the champion",
                                     field="--to", fix="pick an earlier champion")
            if target not in {e.to_version for e in moves}:
                raise PromotionError(f"version {target} has never been champion",
                                     field="--to", fix="roll back only to a version listed "
                                     "by `plimsoll history`")
        tags = self.aliases.version_tags(self.model, target)
        if tags.get(DIGEST_TAG) != lineage_digest(tags):
            raise PromotionError(f"version {target}'s lineage tags were edited", field="--to",
                                 fix=f"run `plimsoll verify {target}`; pick another version")
        return self._move_champion(target, action="rollback", actor=actor or current_actor(),
                                   reason=reason, digest=tags.get(DIGEST_TAG, ""))
