"""`kcc similar eval`: how well the similar-question search finds the earlier question that
answers a new one, on a labelled file (data/similar-*.jsonl; format in data/README.md)."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from kcc_shared.similarity import THRESHOLD, Entry, SimilarityIndex, answered_text, meaning

__all__ = ["Evaluation", "evaluate", "read_pairs", "similar_group"]


class PairsError(ValueError):
    """A labelled file that cannot be evaluated, with the line that says why."""


@dataclass(frozen=True)
class Pairs:
    earlier: dict[str, str]  # id -> the question and its answer (answered_text)
    new: list[tuple[str, str | None, str]]  # question, the earlier id that answers it, style


@dataclass(frozen=True)
class Evaluation:
    """Per style: questions with an answer among the first three and first, and first
    suggestions that were wrong (another question first, or any question when none answers
    it: with those apart, as 'shown_unanswerable')."""

    total: dict[str, int]
    with_match: dict[str, int]
    found: dict[str, int]
    first: dict[str, int]
    wrong_first: dict[str, int]
    unanswerable: dict[str, int]
    shown_unanswerable: dict[str, int]
    silent: dict[str, int]

    def figures(self) -> dict[str, Any]:
        def share(part: int, whole: int) -> float | None:
            return round(part / whole, 4) if whole else None

        styles = sorted(self.total)
        every = {
            "questions": sum(self.total.values()),
            "top3": share(sum(self.found.values()), sum(self.with_match.values())),
            "top1": share(sum(self.first.values()), sum(self.with_match.values())),
            "wrong_first": share(sum(self.wrong_first.values()), sum(self.total.values())),
            "shown_unanswerable": share(
                sum(self.shown_unanswerable.values()), sum(self.unanswerable.values())
            ),
            "no_suggestion": share(sum(self.silent.values()), sum(self.total.values())),
        }
        per_style = {
            style: {
                "questions": self.total[style],
                "top3": share(self.found[style], self.with_match[style]),
                "top1": share(self.first[style], self.with_match[style]),
                "wrong_first": share(self.wrong_first[style], self.total[style]),
            }
            for style in styles
        }
        return {"threshold": THRESHOLD, "all": every, "styles": per_style}


def read_pairs(path: Path) -> Pairs:
    earlier: dict[str, str] = {}
    new: list[tuple[str, str | None, str]] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise PairsError(f"{path}: cannot read it ({exc})") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PairsError(f"{where}: not JSON ({exc.msg})") from exc
        if not isinstance(item, dict) or item.get("kind") not in ("earlier", "new"):
            raise PairsError(f"{where}: expected an object with kind 'earlier' or 'new'")
        question, key = item.get("question"), item.get("id")
        if not isinstance(question, str) or not question.strip() or not isinstance(key, str):
            raise PairsError(f"{where}: needs a text 'id' and a non-empty 'question'")
        if item["kind"] == "earlier":
            answer = item.get("answer")
            if not isinstance(answer, str) or not answer.strip():
                raise PairsError(f"{where}: an earlier question needs its 'answer'")
            if key in earlier:
                raise PairsError(f"{where}: id {key!r} appears twice")
            earlier[key] = answered_text(question, answer)
        else:
            match, style = item.get("match"), item.get("style")
            if match is not None and not isinstance(match, str):
                raise PairsError(f"{where}: 'match' is an earlier id or null")
            new.append((question, match, str(style or "-")))
    for question, match, _ in new:
        if match is not None and match not in earlier:
            raise PairsError(f"{path}: {question[:40]!r} matches {match!r}, which is not in it")
    if not earlier or not new:
        raise PairsError(f"{path}: needs earlier and new questions")
    return Pairs(earlier, new)


def evaluate(pairs: Pairs) -> Evaluation:
    keys = list(pairs.earlier)
    texts = [pairs.earlier[k] for k in keys]
    index = SimilarityIndex(Entry(k, v) for k, v in zip(keys, meaning(texts), strict=True))
    total: dict[str, int] = defaultdict(int)
    with_match: dict[str, int] = defaultdict(int)
    found: dict[str, int] = defaultdict(int)
    first: dict[str, int] = defaultdict(int)
    wrong_first: dict[str, int] = defaultdict(int)
    unanswerable: dict[str, int] = defaultdict(int)
    shown_unanswerable: dict[str, int] = defaultdict(int)
    silent: dict[str, int] = defaultdict(int)
    vectors = meaning([question for question, _, _ in pairs.new])
    for (question, match, style), vector in zip(pairs.new, vectors, strict=True):
        shown = [m.key for m in index.search(question, vector=vector)]
        total[style] += 1
        if match is not None:
            with_match[style] += 1
            found[style] += match in shown
            first[style] += shown[:1] == [match]
        else:
            unanswerable[style] += 1
            shown_unanswerable[style] += bool(shown)
        if shown and shown[0] != match:
            wrong_first[style] += 1
        if not shown:
            silent[style] += 1
    return Evaluation(
        total=dict(total),
        with_match=dict(with_match),
        found=dict(found),
        first=dict(first),
        wrong_first=dict(wrong_first),
        unanswerable=dict(unanswerable),
        shown_unanswerable=dict(shown_unanswerable),
        silent=dict(silent),
    )


@click.group("similar")
def similar_group() -> None:
    """The similar-question search (suggestions for the desk and the departments)."""


@similar_group.command("eval")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def eval_command(path: Path, as_json: bool) -> None:
    """Share of new questions whose answering earlier question is among the first three
    suggestions (and first), and how often the first suggestion is a wrong one, per style."""
    try:
        figures = evaluate(read_pairs(path)).figures()
    except PairsError as exc:
        raise click.UsageError(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(figures, indent=2))
        return
    every = figures["all"]
    click.echo(
        f"{every['questions']} questions, threshold {figures['threshold']}: "
        f"right one in the first three {_pct(every['top3'])}, first {_pct(every['top1'])}; "
        f"a wrong one first {_pct(every['wrong_first'])} (a suggestion where no earlier "
        f"question answers it {_pct(every['shown_unanswerable'])}); "
        f"no suggestion {_pct(every['no_suggestion'])}"
    )
    for style, row in figures["styles"].items():
        click.echo(
            f"  {style:<12} {row['questions']:>4}  first three {_pct(row['top3']):>7}"
            f"  first {_pct(row['top1']):>7}  wrong first {_pct(row['wrong_first']):>7}"
        )


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f} %"
