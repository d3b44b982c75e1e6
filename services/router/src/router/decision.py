"""One decision from two deciders: the organisation's rules and the learned model.

How they combine (measured in docs/routing.md, on data the model never saw):

1. A matching **policy rule** decides (the first in file order when several match): "a damage
   claim is juridische zaken, whatever street object it mentions"; a threatened eviction is
   sociaal domein, urgent, whatever else the question mentions.
2. Rules of one or more departments match (or the agent chose a category): the model chooses
   among those departments, the one it finds most likely. A question about one topic with
   another as context ("net verhuisd, hoe krijg ik een parkeervergunning?") matches both, and a
   keyword hit on the context was the main source of wrong departments. Only when the model is
   sure of a department no rule named (``override`` or more) and gives the rules' best at most
   ``doubt``, the model decides; when it is fairly sure of such a department (``threshold``)
   and gives the rules' best less than ``dispute``, the two disagree too much and a person in
   triage decides.
3. No rule: the model decides when it is sure enough (``threshold`` or more); below that the
   question goes to triage, where a person chooses (triage costs less than a wrong department).
   These questions, and English ones, are also read by the model's sentence head.

Without a model, the rules decide alone, exactly as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from kcc_shared.organisation import Organisation, Priority, PriorityChange

from router.model import Prediction, RoutingModel
from router.rules import Decision as RuleDecision
from router.rules import RuleSet, apply_priority

__all__ = [
    "DEFAULT_POLICY",
    "Decider",
    "Policy",
    "Query",
    "RoutingDecision",
]

Reason = Literal["rule", "category", "model", "fallback"]


@dataclass(frozen=True)
class Policy:
    """The confidence thresholds of the combination (fractions, 0..1)."""

    # The model decides a question no rule recognised from this confidence up.
    threshold: float = 0.4
    # The model overrules the rules from this confidence up ...
    override: float = 0.6
    # ... when it gives the best department the rules named at most this probability.
    doubt: float = 0.2
    # When the model is sure enough (threshold) of a department no rule named and gives the
    # rules' best less than this, rules and model disagree too much: triage, a person decides.
    dispute: float = 0.2


DEFAULT_POLICY: Final = Policy()


@dataclass(frozen=True)
class Query:
    """What to decide: the question, the agent's category, departments to skip (a forward)."""

    question: str
    category: str | None = None
    exclude: frozenset[str] = frozenset()


@dataclass(frozen=True)
class RoutingDecision:
    """Where a question goes, which decider chose it, how sure, and why in Dutch."""

    department: str
    reason: Reason
    rule_id: str | None
    matched: tuple[str, ...]
    priority_change: PriorityChange | None
    rules_version: str
    model_version: str | None
    # The model's probability for the chosen department (None without a model).
    confidence: float | None
    # For people, in Dutch: "Regel voor Parkeren: de vraag noemt 'parkeervergunning'".
    explanation: str
    # Up to three curated example questions of the chosen department close to this one.
    similar: tuple[str, ...] = field(default=())

    def apply_priority(self, current: str) -> Priority:
        """The request's priority after this decision (unchanged when no rule changes it)."""
        return apply_priority(self.priority_change, current)


def _percent(value: float) -> str:
    # Never "100 % zeker" for a model that is not: 99.6 % shows as 99 %.
    return f"{min(round(value * 100), 99) if value < 1 else 100} %"


def _pointed(words: list[str]) -> str:
    """'container' wees / 'container' en 'kliko' wezen (Dutch verbs agree in number)."""
    return f"{_listed(words)} {'wezen' if len(words) > 1 else 'wees'}"


def _listed(words: list[str]) -> str:
    """'a', 'b' en 'c'."""
    return ", ".join(words[:-1]) + " en " + words[-1] if len(words) > 1 else "".join(words)


class Decider:
    """The rules and (optionally) a model, combined by a policy; stateless per question."""

    def __init__(
        self,
        ruleset: RuleSet,
        model: RoutingModel | None = None,
        policy: Policy = DEFAULT_POLICY,
    ) -> None:
        if model is not None:
            model.check_departments(ruleset.organisation.departments)
        self.ruleset = ruleset
        self.model = model
        self.policy = policy

    @property
    def organisation(self) -> Organisation:
        return self.ruleset.organisation

    @property
    def model_version(self) -> str | None:
        return self.model.version if self.model is not None else None

    def decide(self, query: Query) -> RoutingDecision:
        return self.decide_many([query])[0]

    def decide_many(
        self, queries: Sequence[Query], predictions: Sequence[Prediction] | None = None
    ) -> list[RoutingDecision]:
        """Decide a batch: the model reads all questions in one pass. ``predictions`` reuses
        the model's answers for the same questions (evaluation tries several policies)."""
        candidates = [self.ruleset.candidates(q.question, q.category, q.exclude) for q in queries]
        if self.model is None:
            return [self._by_rules(found[0], None) for found in candidates]
        if predictions is None:
            # The sentence head reads what no rule recognised (English questions always).
            deep = [found[0].reason == "fallback" for found in candidates]
            predictions = self.model.predict([q.question for q in queries], deep=deep)
        return [
            self._combine(found, _without(prediction, q.exclude))
            for q, found, prediction in zip(queries, candidates, predictions, strict=True)
        ]

    def predict(self, queries: Sequence[Query]) -> list[Prediction] | None:
        """The model's view of each question exactly as decide_many would read it (sentence
        head where no rule matched); None without a model."""
        if self.model is None:
            return None
        deep = [
            self.ruleset.candidates(q.question, q.category, q.exclude)[0].reason == "fallback"
            for q in queries
        ]
        return self.model.predict([q.question for q in queries], deep=deep)

    def with_policy(self, policy: Policy) -> Decider:
        """The same rules and model under other thresholds."""
        return Decider(self.ruleset, self.model, policy)

    # -- the combination -----------------------------------------------------------------------

    def _combine(self, found: list[RuleDecision], prediction: Prediction) -> RoutingDecision:
        policy = self.policy
        first = found[0]
        if first.reason == "fallback":
            if prediction.department and prediction.confidence >= policy.threshold:
                return self._by_model(prediction, instead_of=None)
            return self._by_rules(first, prediction)
        for candidate in found:
            spec = self.ruleset.rule(candidate.rule_id) if candidate.rule_id else None
            if spec is not None and spec.policy:
                return self._by_rules(candidate, prediction)
        best = max(found, key=lambda d: prediction.probability(d.department))
        named = {d.department for d in found}
        if (
            prediction.department
            and prediction.department not in named
            and prediction.confidence >= policy.override
            and prediction.probability(best.department) <= policy.doubt
        ):
            return self._by_model(prediction, instead_of=first)
        if (
            prediction.department
            and prediction.department not in named
            and prediction.confidence >= policy.threshold
            and prediction.probability(best.department) < policy.dispute
        ):
            return self._disputed(best, prediction)
        return self._by_rules(best, prediction, passed_over=[d for d in found if d is not best])

    def _disputed(self, rule: RuleDecision, prediction: Prediction) -> RoutingDecision:
        fallback = self.organisation.fallback_department
        words = _words(rule, self.organisation)
        return RoutingDecision(
            department=fallback,
            reason="fallback",
            rule_id=None,
            matched=rule.matched,
            priority_change=None,
            rules_version=self.ruleset.version,
            model_version=self.model_version,
            confidence=round(prediction.probability(fallback), 4),
            explanation=(
                f"{_pointed(words) if words else 'De vraag wees'} naar "
                f"{self.name(rule.department)}, maar de vraag lijkt meer op eerdere vragen voor "
                f"{self.name(prediction.department)} ({_percent(prediction.confidence)}); "
                f"{self.name(fallback)} kiest de afdeling"
            ),
            similar=(),
        )

    def _by_rules(
        self,
        rule: RuleDecision,
        prediction: Prediction | None,
        passed_over: Sequence[RuleDecision] = (),
    ) -> RoutingDecision:
        confidence = prediction.probability(rule.department) if prediction else None
        return RoutingDecision(
            department=rule.department,
            reason=rule.reason,
            rule_id=rule.rule_id,
            matched=rule.matched,
            priority_change=rule.priority_change,
            rules_version=rule.rules_version,
            model_version=self.model_version,
            confidence=None if confidence is None else round(confidence, 4),
            explanation=self._explain_rules(rule, prediction, passed_over),
            similar=(),
        )

    def _by_model(self, prediction: Prediction, instead_of: RuleDecision | None) -> RoutingDecision:
        name = self.name(prediction.department)
        text = f"Lijkt op eerdere vragen voor {name} ({_percent(prediction.confidence)} zeker)"
        if prediction.department == self.organisation.fallback_department:
            text = (
                f"Lijkt op eerdere vragen die bij geen afdeling horen "
                f"({_percent(prediction.confidence)} zeker); {name} helpt verder"
            )
        if instead_of is not None:
            words = _words(instead_of, self.organisation)
            hint = _pointed(words) if words else "de gekozen categorie wees"
            text += (
                f"; {hint} naar {self.name(instead_of.department)}, "
                "maar de hele vraag lijkt daar niet op"
            )
        return RoutingDecision(
            department=prediction.department,
            reason="model",
            rule_id=None,
            matched=(),
            priority_change=None,
            rules_version=self.ruleset.version,
            model_version=self.model_version,
            confidence=round(prediction.confidence, 4),
            explanation=text,
            similar=tuple(s.question for s in prediction.similar),
        )

    # -- explanations ----------------------------------------------------------------------------

    def name(self, department: str) -> str:
        """A department's name for people (its id only if the organisation lacks it)."""
        known = self.organisation.departments.get(department)
        return known.name if known is not None else department

    def _explain_rules(
        self,
        rule: RuleDecision,
        prediction: Prediction | None,
        passed_over: Sequence[RuleDecision] = (),
    ) -> str:
        name = self.name(rule.department)
        if rule.reason == "fallback":
            if prediction is None or prediction.confidence == 0:
                return (
                    f"Geen regel herkende de vraag; {name} kiest de afdeling"
                    if prediction is None
                    else f"Geen regel of eerdere vraag leek op deze vraag; {name} kiest de afdeling"
                )
            return (
                f"Geen regel herkende de vraag en het model was niet zeker genoeg "
                f"(hoogstens {_percent(prediction.confidence)}, voor "
                f"{self.name(prediction.department)}); {name} kiest de afdeling"
            )
        if rule.reason == "category" and rule.rule_id is None:
            text = f"Gekozen categorie hoort bij {name}"
        else:
            words = _words(rule, self.organisation)
            named = [w for w in words if not w.startswith("categorie ")]
            chosen = [w for w in words if w.startswith("categorie ")]
            text = f"Regel voor {name}: " + (
                f"de vraag noemt {_listed(named)}" if named else f"de gekozen {_listed(chosen)}"
            )
        if passed_over and prediction is not None:
            # "voor" before every name: department names hold "en" themselves.
            names = [f"voor {self.name(d.department)}" for d in passed_over]
            if len(names) == 1:
                others = f"Ook een regel {names[0]} paste"
            else:
                others = f"Ook regels {', '.join(names[:-1])} en {names[-1]} pasten"
            return (
                f"{text}. {others}, maar de vraag lijkt meer op eerdere "
                f"vragen voor {name} ({_percent(prediction.probability(rule.department))})"
            )
        if prediction is not None:
            if prediction.department == rule.department:
                text += f"; het model is het ermee eens ({_percent(prediction.confidence)} zeker)"
            else:
                text += (
                    f"; het model dacht eerder aan {self.name(prediction.department)} "
                    f"({_percent(prediction.confidence)})"
                )
        return text


def _without(prediction: Prediction, exclude: frozenset[str]) -> Prediction:
    """The prediction with forwarded-away departments taken out (the rest renormalised)."""
    if not exclude or not exclude.intersection(prediction.probabilities):
        return prediction
    kept = {d: p for d, p in prediction.probabilities.items() if d not in exclude}
    total = sum(kept.values())
    if total <= 0 or not kept:
        return Prediction(department="", confidence=0.0, probabilities={}, similar=())
    kept = {d: p / total for d, p in kept.items()}
    best = max(kept, key=kept.__getitem__)
    return Prediction(
        department=best,
        confidence=kept[best] if prediction.confidence > 0 else 0.0,
        probabilities=kept,
        # The similar examples were chosen for the old best department; show none rather than
        # examples of another one.
        similar=prediction.similar if best == prediction.department else (),
    )


def _words(rule: RuleDecision, organisation: Organisation) -> list[str]:
    """The words of the question that made the rule match, quoted for people:
    ["'parkeervergunning'", "'bezoek aanmelden'"]; a category as "categorie '<label>'"."""
    found: list[str] = []
    for entry in rule.matched:
        kind, _, rest = entry.partition(" ")
        if kind == "category":
            category = organisation.categories.get(rest.split(" ")[0])
            if category is not None:
                found.append(f"categorie '{category.label}'")
            continue
        # "keyword parkeer: parkeervergunning" -> the word in the question; "phrase x y" -> x y
        term, _, token = rest.partition(": ")
        word = token or term
        if word and f"'{word}'" not in found:
            found.append(f"'{word}'")
    return found
