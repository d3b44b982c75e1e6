"""How the router decides on labelled questions: right, wrong department, or triage.

Measures the whole decision exactly as the running router makes it (rules and model through
the same Decider), overall and per expected department, per decider and per writing style, with
each department's precision and recall and the trade-off curve of the model's threshold.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Final

from kcc_shared.examples import LabelledQuestion

from router.decision import Decider, Query, RoutingDecision

__all__ = ["CURVE_THRESHOLDS", "Evaluation", "Outcome", "Tally", "evaluate"]

# The model thresholds the trade-off curve is drawn at.
CURVE_THRESHOLDS: Final = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass(frozen=True)
class Outcome:
    """One labelled question and what the router decided for it."""

    question: LabelledQuestion
    decision: RoutingDecision
    fallback: str

    @property
    def right(self) -> bool:
        return self.decision.department == self.question.department

    @property
    def triaged(self) -> bool:
        return self.decision.department == self.fallback and not self.right

    @property
    def wrong(self) -> bool:
        return not self.right and not self.triaged


@dataclass(frozen=True)
class Tally:
    """Right, wrong department and triage for a group of questions."""

    total: int = 0
    right: int = 0
    wrong: int = 0
    triaged: int = 0

    def add(self, outcome: Outcome) -> Tally:
        return Tally(
            self.total + 1,
            self.right + outcome.right,
            self.wrong + outcome.wrong,
            self.triaged + outcome.triaged,
        )

    @property
    def accuracy(self) -> float:
        return self.right / self.total if self.total else 0.0

    @property
    def wrong_rate(self) -> float:
        return self.wrong / self.total if self.total else 0.0

    @property
    def triage_rate(self) -> float:
        return self.triaged / self.total if self.total else 0.0


def _tally(outcomes: Iterable[Outcome], key: Callable[[Outcome], str]) -> dict[str, Tally]:
    groups: dict[str, Tally] = {}
    for outcome in outcomes:
        name = key(outcome)
        groups[name] = groups.get(name, Tally()).add(outcome)
    return dict(sorted(groups.items()))


@dataclass(frozen=True)
class Evaluation:
    """The figures of one run over a labelled file."""

    rules_version: str
    model_version: str | None
    fallback_department: str
    outcomes: tuple[Outcome, ...]
    # (threshold, tally) for the model threshold trade-off; empty without a model.
    curve: tuple[tuple[float, Tally], ...] = ()

    @property
    def overall(self) -> Tally:
        total = Tally()
        for outcome in self.outcomes:
            total = total.add(outcome)
        return total

    @property
    def by_department(self) -> dict[str, Tally]:
        return _tally(self.outcomes, lambda o: o.question.department)

    @property
    def by_decider(self) -> dict[str, Tally]:
        return _tally(self.outcomes, lambda o: o.decision.reason)

    @property
    def by_style(self) -> dict[str, Tally]:
        """Per writing style; empty when the file has no ``style`` field."""
        if not any(o.question.style for o in self.outcomes):
            return {}
        return _tally(self.outcomes, lambda o: o.question.style or "(none)")

    @property
    def confusion(self) -> Mapping[str, Mapping[str, int]]:
        counts: dict[str, Counter[str]] = {}
        for outcome in self.outcomes:
            counts.setdefault(outcome.question.department, Counter())[
                outcome.decision.department
            ] += 1
        return {expected: dict(got.most_common()) for expected, got in sorted(counts.items())}

    @property
    def precision_recall(self) -> dict[str, tuple[float, float]]:
        """Per department: of the questions sent there, the share that belonged there
        (precision); of those that belonged there, the share sent there (recall)."""
        result: dict[str, tuple[float, float]] = {}
        for department in sorted({o.question.department for o in self.outcomes}):
            sent = [o for o in self.outcomes if o.decision.department == department]
            belong = [o for o in self.outcomes if o.question.department == department]
            precision = sum(o.right for o in sent) / len(sent) if sent else 0.0
            recall = sum(o.right for o in belong) / len(belong) if belong else 0.0
            result[department] = (precision, recall)
        return result

    @property
    def misses(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if not o.right)


def evaluate(
    decider: Decider,
    rows: Sequence[LabelledQuestion],
    thresholds: Sequence[float] = CURVE_THRESHOLDS,
) -> Evaluation:
    """Decide every labelled question as the router would, and draw the threshold curve."""
    fallback = decider.organisation.fallback_department
    queries = [Query(row.question, row.category) for row in rows]
    predictions = decider.predict(queries)
    decisions = decider.decide_many(queries, predictions)
    outcomes = tuple(
        Outcome(row, decision, fallback) for row, decision in zip(rows, decisions, strict=True)
    )
    curve: list[tuple[float, Tally]] = []
    if predictions is not None:
        for threshold in thresholds:
            policy = replace(
                decider.policy,
                threshold=threshold,
                override=max(threshold, decider.policy.override),
            )
            tally = Tally()
            for row, decision in zip(
                rows, decider.with_policy(policy).decide_many(queries, predictions), strict=True
            ):
                tally = tally.add(Outcome(row, decision, fallback))
            curve.append((threshold, tally))
    return Evaluation(
        rules_version=decider.ruleset.version,
        model_version=decider.model_version,
        fallback_department=fallback,
        outcomes=outcomes,
        curve=tuple(curve),
    )
