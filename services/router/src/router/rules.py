"""Routing rules: find the rules that match a question, in file order, and explain them."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from kcc_shared.organisation import (
    PRIORITIES,
    Organisation,
    Priority,
    PriorityChange,
    RuleSpec,
)
from kcc_shared.text import normalise, tokens, word_forms

__all__ = [
    "COMPOUND_MIN_LENGTH",
    "COMPOUND_MIN_PART",
    "Decision",
    "Explanation",
    "RuleSet",
    "RuleTrace",
    "apply_priority",
    "normalise",
    "tokens",
    "word_forms",
]

Reason = Literal["category", "rule", "fallback"]

# A keyword of at least this many letters also matches inside compounds
# ("vergunning" in "omgevingsvergunning"); shorter ones ("woz", "boom", "pas") only match whole
# words, because short words hide everywhere ("pas" in "paspoort", "kap" in "kapot").
COMPOUND_MIN_LENGTH: Final = 5
# The rest of a compound must be at least this long, so "naheffing" is not a "heffing" and a
# verb ending ("-de", "-er") does not count as a second word.
COMPOUND_MIN_PART: Final = 3
# Inseparable verb prefixes are not the first half of a compound: "ontheffing" is no kind of
# "heffing" and "verbouwing" no kind of "bouwing".
_NOT_A_COMPOUND_PART: Final = frozenset({"ont", "ver", "her", "mis"})
# Tokens seen before are looked up in a cache; it is cleared when it grows past this size,
# which bounds memory when questions contain many one-off words (names, numbers).
_TOKEN_CACHE_LIMIT: Final = 50_000


@dataclass(frozen=True)
class Decision:
    """Where a question goes, and why."""

    department: str
    rule_id: str | None
    reason: Reason
    matched: tuple[str, ...]
    priority_change: PriorityChange | None
    rules_version: str

    def apply_priority(self, current: str) -> Priority:
        """The request's priority after this decision (unchanged when no rule changes it)."""
        return apply_priority(self.priority_change, current)


def apply_priority(change: PriorityChange | None, current: str) -> Priority:
    """A priority after a rule's change (unchanged without one); ValueError when unknown."""
    if change is not None:
        return change.apply(current)
    for priority in PRIORITIES:
        if priority == current:
            return priority
    raise ValueError(f"unknown priority {current!r}; expected one of {', '.join(PRIORITIES)}")


@dataclass(frozen=True)
class RuleTrace:
    """What one rule did with a question, for ``explain``.

    outcome: ``decided`` (it won), ``also-matched`` (it matched, but an earlier rule won),
    ``vetoed`` (it matched, but an ``unless`` word was present) or ``excluded`` (it matched a
    department the question was forwarded away from).
    """

    rule_id: str
    department: str
    line: int
    outcome: Literal["decided", "also-matched", "vetoed", "excluded"]
    matched: tuple[str, ...]
    vetoed_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class Explanation:
    """A decision with the normalised question and every rule that had something to say."""

    decision: Decision
    normalised: str
    trace: tuple[RuleTrace, ...]


@dataclass(frozen=True)
class _Term:
    """A keyword, phrase or unless entry as written, with its compiled matcher."""

    text: str
    words: tuple[str, ...]
    # Whole words in sequence, each in any inflected form; how phrases and multi-word
    # keywords match. Single-word keywords use the word lookup instead (compounds too).
    regex: re.Pattern[str]
    single: bool
    # For a multi-word term: the id under which its first word is looked up, so the regex
    # only runs when that word is in the question at all.
    gate: int | None


@dataclass(frozen=True)
class _Rule:
    spec: RuleSpec
    categories: frozenset[str]
    keywords: tuple[int, ...]
    phrases: tuple[int, ...]
    unless: tuple[int, ...]
    patterns: tuple[tuple[str, re.Pattern[str]], ...]
    # The same, arranged for the fast path of route(): single words by id, the rest as
    # (gate id or None, regex).
    keyword_set: frozenset[int]
    keyword_order: Mapping[int, int]
    unless_set: frozenset[int]
    text_regexes: tuple[tuple[int | None, re.Pattern[str]], ...]
    unless_regexes: tuple[tuple[int | None, re.Pattern[str]], ...]


@dataclass
class _Question:
    """One question, analysed once: its words and which single-word terms they match."""

    text: str
    hits: dict[int, str]
    category: str | None


def _phrase_hit(regexes: Sequence[tuple[int | None, re.Pattern[str]]], q: _Question) -> bool:
    """Whether a phrase or pattern matches; one gated on a word is only tried when the
    question holds that word (the regex is the slow part)."""
    return any(
        (gate is None or gate in q.hits) and rx.search(q.text) is not None for gate, rx in regexes
    )


class RuleSet:
    """The organisation's rules, compiled once for fast routing."""

    def __init__(self, organisation: Organisation) -> None:
        self.organisation = organisation
        self.version = organisation.version
        self._terms: list[_Term] = []
        self._term_ids: dict[tuple[str, ...], int] = {}
        # Gates (first words of multi-word terms) get negative ids, apart from real terms.
        self._gates: dict[str, int] = {}
        # word form -> ids of single-word terms it matches as a whole word
        self._exact: dict[str, set[int]] = {}
        # word form -> ids of single-word terms that may also be part of a compound
        self._compound: dict[str, set[int]] = {}
        self._cache: dict[str, tuple[tuple[int, str], ...]] = {}
        self._rules = tuple(self._compile(spec) for spec in organisation.rules)
        self._frozen_exact = {k: tuple(sorted(v)) for k, v in self._exact.items()}
        self._frozen_compound = {k: tuple(sorted(v)) for k, v in self._compound.items()}
        self._min_compound_token = COMPOUND_MIN_LENGTH + COMPOUND_MIN_PART

    @classmethod
    def from_organisation(cls, organisation: Organisation) -> RuleSet:
        return cls(organisation)

    # -- compiling ---------------------------------------------------------------------------

    def _term(self, text: str) -> int:
        words = tuple(tokens(text))
        existing = self._term_ids.get(words)
        if existing is not None:
            return existing
        term_id = len(self._terms)
        gate = None
        if len(words) == 1:
            word = words[0]
            for form in word_forms(word):
                self._exact.setdefault(form, set()).add(term_id)
                if len(word) >= COMPOUND_MIN_LENGTH:
                    self._compound.setdefault(form, set()).add(term_id)
        else:
            gate = self._gate(words[0])
        parts = [
            "(?:" + "|".join(sorted(map(re.escape, word_forms(w)), key=len, reverse=True)) + ")"
            for w in words
        ]
        regex = re.compile(r"(?<!\S)" + " ".join(parts) + r"(?!\S)")
        self._terms.append(
            _Term(text=text, words=words, regex=regex, single=len(words) == 1, gate=gate)
        )
        self._term_ids[words] = term_id
        return term_id

    def _gate(self, word: str) -> int:
        gate = self._gates.get(word)
        if gate is None:
            gate = -1 - len(self._gates)
            self._gates[word] = gate
            for form in word_forms(word):
                self._exact.setdefault(form, set()).add(gate)
        return gate

    def _compile(self, spec: RuleSpec) -> _Rule:
        keywords = tuple(self._term(k) for k in spec.keywords)
        phrases = tuple(self._term(p) for p in spec.phrases)
        unless = tuple(self._term(u) for u in spec.unless)
        patterns = tuple((p, re.compile(p, re.IGNORECASE)) for p in spec.patterns)
        terms = self._terms
        return _Rule(
            spec=spec,
            categories=frozenset(spec.categories),
            keywords=keywords,
            phrases=phrases,
            unless=unless,
            patterns=patterns,
            keyword_set=frozenset(t for t in keywords if terms[t].single),
            keyword_order={t: i for i, t in reversed(list(enumerate(keywords)))},
            unless_set=frozenset(t for t in unless if terms[t].single),
            text_regexes=(
                *((terms[t].gate, terms[t].regex) for t in keywords if not terms[t].single),
                # A one-word phrase is its own gate: no hit (not even in a compound), no match.
                *((t if terms[t].single else terms[t].gate, terms[t].regex) for t in phrases),
                *((None, rx) for _, rx in patterns),
            ),
            unless_regexes=tuple(
                (terms[t].gate, terms[t].regex) for t in unless if not terms[t].single
            ),
        )

    # -- matching ----------------------------------------------------------------------------

    def _lookup(self, token: str) -> tuple[tuple[int, str], ...]:
        cached = self._cache.get(token)
        if cached is not None:
            return cached
        found: dict[int, str] = dict.fromkeys(self._frozen_exact.get(token, ()), token)
        n = len(token)
        if n >= self._min_compound_token:
            compound = self._frozen_compound
            # The keyword as the last part: "parkeervergunning" is a kind of "vergunning".
            for i in range(COMPOUND_MIN_PART, n - COMPOUND_MIN_LENGTH + 1):
                if i == 3 and token[:3] in _NOT_A_COMPOUND_PART:
                    continue
                for term_id in compound.get(token[i:], ()):
                    found.setdefault(term_id, token)
            # The keyword as the first part: "paspoortaanvraag", "bijstandsuitkering".
            for j in range(COMPOUND_MIN_LENGTH, n - COMPOUND_MIN_PART + 1):
                for term_id in compound.get(token[:j], ()):
                    found.setdefault(term_id, token)
        result = tuple(found.items())
        if len(self._cache) >= _TOKEN_CACHE_LIMIT:
            self._cache.clear()
        self._cache[token] = result
        return result

    def _analyse(self, question: str, category: str | None) -> _Question:
        words = tokens(question)
        hits: dict[int, str] = {}
        for word in words:
            for term_id, token in self._lookup(word):
                hits.setdefault(term_id, token)
        return _Question(text=" ".join(words), hits=hits, category=category)

    def _matches(self, rule: _Rule, q: _Question) -> bool:
        if q.category is not None and q.category in rule.categories:
            return True
        return not rule.keyword_set.isdisjoint(q.hits) or _phrase_hit(rule.text_regexes, q)

    def _vetoed(self, rule: _Rule, q: _Question) -> bool:
        return not rule.unless_set.isdisjoint(q.hits) or _phrase_hit(rule.unless_regexes, q)

    def _describe_term(
        self, kind: str, term_id: int, q: _Question, *, whole_words: bool = False
    ) -> str | None:
        term = self._terms[term_id]
        if term.single and not whole_words:
            token = q.hits.get(term_id)
            if token is None:
                return None
            if token == term.words[0]:
                return f"{kind} {term.text}"
            return f"{kind} {term.text}: {token}"
        match = term.regex.search(q.text)
        if match is None:
            return None
        if match.group(0) == " ".join(term.words):
            return f"{kind} {term.text}"
        return f"{kind} {term.text}: {match.group(0)}"

    def _what_matched(self, rule: _Rule, q: _Question) -> tuple[str, ...]:
        found: list[str] = []
        if q.category is not None and q.category in rule.categories:
            found.append(f"category {q.category}")
        # Only the keywords that can have matched, in the order the rule lists them.
        candidates = [t for t in rule.keywords if not self._terms[t].single]
        candidates += rule.keyword_set.intersection(q.hits)
        for term_id in sorted(set(candidates), key=rule.keyword_order.__getitem__):
            described = self._describe_term("keyword", term_id, q)
            if described:
                found.append(described)
        for term_id in rule.phrases:
            described = self._describe_term("phrase", term_id, q, whole_words=True)
            if described:
                found.append(described)
        for text, rx in rule.patterns:
            match = rx.search(q.text)
            if match is not None:
                found.append(f"pattern {text}: {match.group(0)}")
        return tuple(found)

    def _what_vetoed(self, rule: _Rule, q: _Question) -> tuple[str, ...]:
        found: list[str] = []
        for term_id in rule.unless:
            described = self._describe_term("unless", term_id, q)
            if described:
                found.append(described)
        return tuple(found)

    def _decide(self, rule: _Rule, q: _Question) -> Decision:
        matched = self._what_matched(rule, q)
        by_category = q.category is not None and q.category in rule.categories
        return Decision(
            department=rule.spec.department,
            rule_id=rule.spec.id,
            reason="category" if by_category else "rule",
            matched=matched,
            priority_change=rule.spec.priority,
            rules_version=self.version,
        )

    def _without_rule(self, q: _Question, exclude: frozenset[str]) -> Decision:
        # No rule matched: the catalog still says which department owns the agent's category.
        category = self.organisation.categories.get(q.category) if q.category is not None else None
        if category is not None and category.department not in exclude:
            return Decision(
                department=category.department,
                rule_id=None,
                reason="category",
                matched=(f"category {category.id} (catalog)",),
                priority_change=None,
                rules_version=self.version,
            )
        # Note: the fallback department is used even when excluded; there is nowhere else to go.
        return Decision(
            department=self.organisation.fallback_department,
            rule_id=None,
            reason="fallback",
            matched=(),
            priority_change=None,
            rules_version=self.version,
        )

    def route(
        self,
        question: str,
        category: str | None = None,
        exclude: frozenset[str] = frozenset(),
    ) -> Decision:
        """The department for a question: the first rule that matches, in file order.

        ``exclude`` skips the rules (and the catalog entry) of departments the question was
        forwarded away from. A category that is not in the catalog matches nothing; callers
        that take categories from people should check ``organisation.categories`` first.
        """
        q = self._analyse(question, category)
        for rule in self._rules:
            if rule.spec.department in exclude:
                continue
            if self._matches(rule, q) and not self._vetoed(rule, q):
                return self._decide(rule, q)
        return self._without_rule(q, exclude)

    def candidates(
        self,
        question: str,
        category: str | None = None,
        exclude: frozenset[str] = frozenset(),
    ) -> list[Decision]:
        """Every department a matching rule names, in file order, as the decision its first
        rule would make (so ``candidates(...)[0] == route(...)``); the catalog or fallback
        decision when no rule matches. A question about one topic with another as context
        matches both; the decider lets the model choose between them."""
        q = self._analyse(question, category)
        found: dict[str, Decision] = {}
        for rule in self._rules:
            department = rule.spec.department
            if department in exclude or department in found:
                continue
            if self._matches(rule, q) and not self._vetoed(rule, q):
                found[department] = self._decide(rule, q)
        return list(found.values()) or [self._without_rule(q, exclude)]

    def explain(
        self,
        question: str,
        category: str | None = None,
        exclude: frozenset[str] = frozenset(),
    ) -> Explanation:
        """Like ``route``, but also reports every other rule that matched, was vetoed or
        excluded, so an administrator can see why the order mattered."""
        q = self._analyse(question, category)
        decision: Decision | None = None
        trace: list[RuleTrace] = []
        for rule in self._rules:
            if not self._matches(rule, q):
                continue
            spec = rule.spec
            matched = self._what_matched(rule, q)
            if spec.department in exclude:
                trace.append(RuleTrace(spec.id, spec.department, spec.line, "excluded", matched))
            elif self._vetoed(rule, q):
                trace.append(
                    RuleTrace(
                        spec.id,
                        spec.department,
                        spec.line,
                        "vetoed",
                        matched,
                        self._what_vetoed(rule, q),
                    )
                )
            elif decision is None:
                decision = self._decide(rule, q)
                trace.append(RuleTrace(spec.id, spec.department, spec.line, "decided", matched))
            else:
                trace.append(
                    RuleTrace(spec.id, spec.department, spec.line, "also-matched", matched)
                )
        if decision is None:
            decision = self._without_rule(q, exclude)
        return Explanation(decision=decision, normalised=q.text, trace=tuple(trace))

    def rule(self, rule_id: str) -> RuleSpec | None:
        """The rule with this id, if any."""
        for rule in self._rules:
            if rule.spec.id == rule_id:
                return rule.spec
        return None
