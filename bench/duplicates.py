"""How close two questions that say the same thing are, against two that do not: the
closeness threshold of the back office's duplicate grouping (backoffice.duplicates).

Usage: .venv/bin/python bench/duplicates.py data/similar-dev.jsonl [--threshold 0.9]

Pairs come from a labelled file of data/similar-*.jsonl (format in data/README.md), compared
question to question (never with an answer), as the grouping compares two open items:

  same:      a new question and the earlier question it matches; two new questions that match
             the same earlier one (the repeat calls after an outage);
  different: a new question and every other earlier question of its match's department; two
             new questions of one department with different matches; a question without a
             match (the near misses: same street, another matter) and every earlier question.

For each candidate threshold it prints the pairs at or above it (grouped): precision (the share
of grouped pairs that say the same thing) and recall (the share of same pairs grouped). Without
--threshold it sweeps and prints the threshold with the best recall at precision >= 0.85
(grouping by mistake costs staff a "Niet samenvoegen"; a missed duplicate only costs them an
answer). Choose the threshold on the dev file only; run the validation file once, with
--threshold.
"""

from __future__ import annotations

import argparse
import json
import sys
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
from kcc_shared.similarity import meaning

MIN_PRECISION = 0.85


def pairs(path: Path) -> tuple[list[str], list[tuple[int, int, bool]]]:
    """The questions and (i, j, same) pairs of a labelled file."""
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    earlier = {e["id"]: e for e in lines if e["kind"] == "earlier"}
    new = [n for n in lines if n["kind"] == "new"]
    texts = [e["question"] for e in earlier.values()] + [n["question"] for n in new]
    row = {key: i for i, key in enumerate(earlier)}
    found: list[tuple[int, int, bool]] = []
    for k, n in enumerate(new):
        i = len(earlier) + k
        match = n["match"]
        department = earlier[match]["department"] if match else None
        for key, e in earlier.items():
            if key == match:
                found.append((i, row[key], True))
            elif department is None or e["department"] == department:
                found.append((i, row[key], False))
    for (a, na), (b, nb) in combinations(enumerate(new), 2):
        if not na["match"] or not nb["match"]:
            continue
        same_department = earlier[na["match"]]["department"] == earlier[nb["match"]]["department"]
        if na["match"] == nb["match"] or same_department:
            found.append((len(earlier) + a, len(earlier) + b, na["match"] == nb["match"]))
    return texts, found


def measure(
    closeness: Any, labelled: list[tuple[int, int, bool]], threshold: float
) -> dict[str, Any]:
    same = sum(1 for _, _, s in labelled if s)
    grouped = [(i, j, s) for i, j, s in labelled if closeness[i, j] >= threshold]
    right = sum(1 for _, _, s in grouped if s)
    return {
        "threshold": round(threshold, 3),
        "pairs": len(labelled),
        "same_pairs": same,
        "grouped": len(grouped),
        "precision": round(right / len(grouped), 4) if grouped else None,
        "recall": round(right / same, 4) if same else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--threshold", type=float, default=None)
    args = parser.parse_args(argv)
    texts, labelled = pairs(args.file)
    vectors = np.stack([np.frombuffer(v, dtype=np.float32) for v in meaning(texts)])
    closeness = vectors @ vectors.T
    if args.threshold is not None:
        print(json.dumps(measure(closeness, labelled, args.threshold)))
        return 0
    sweep = [measure(closeness, labelled, t / 100) for t in range(80, 100)]
    for line in sweep:
        print(json.dumps(line))
    fine = [m for m in sweep if (m["precision"] or 0) >= MIN_PRECISION]
    best = max(fine, key=lambda m: m["recall"] or 0) if fine else None
    print(json.dumps({"chosen": best}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
