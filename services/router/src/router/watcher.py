"""The router's rules and model, reloaded when their files change (no restart needed)."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Final

from kcc_shared.organisation import Organisation, OrganisationError, load_organisation

from router import metrics
from router.decision import Decider
from router.errors import ModelError
from router.model import RoutingModel
from router.rules import RuleSet

__all__ = ["DEFAULT_RELOAD_INTERVAL", "RoutingFiles"]

log = logging.getLogger(__name__)

DEFAULT_RELOAD_INTERVAL: Final = 2.0
_DETAIL_MAX: Final = 300


class RoutingFiles:
    """The organisation (rules) and model in force, and the files they came from.

    `poll()` rereads a file whose content changed (at most every `interval` seconds) and swaps
    in the new rules or model only when it is valid and fits: a broken file keeps the old ones
    in force. `declare(organisation)` makes the queues of a new department exist before the
    first request is routed there; when it fails (broker trouble) the next poll tries again.
    """

    def __init__(
        self,
        organisation: Organisation,
        model: RoutingModel | None,
        *,
        declare: Callable[[Organisation], None],
        organisation_file: str | Path | None = None,
        model_file: str | Path | None = None,
        interval: float = DEFAULT_RELOAD_INTERVAL,
    ) -> None:
        self.organisation = organisation
        # The rules and the model, swapped together so a batch sees one pair.
        self.decider = Decider(RuleSet.from_organisation(organisation), model)
        self._declare = declare
        self._file = Path(organisation_file) if organisation_file is not None else None
        self._model_file = Path(model_file) if model_file is not None else None
        self._seen = _file_hash(self._file)
        self._seen_model = _file_hash(self._model_file)
        self.interval = interval
        self._next_check = 0.0
        # Reload outcomes so far, for tests and operators to await.
        self._outcomes: Counter[str] = Counter()
        self._changed = threading.Condition()
        metrics.set_rules_version(organisation.version)
        metrics.set_model_version(self.decider.model_version)

    def wait_for(self, count: int, timeout: float, outcome: str = "applied") -> bool:
        """Block until `count` reloads with this outcome happened in total; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self._outcomes[outcome] >= count, timeout)

    def count(self, outcome: str = "applied") -> int:
        with self._changed:
            return self._outcomes[outcome]

    def poll(self) -> None:
        now = time.monotonic()
        if now < self._next_check:
            return
        self._next_check = now + self.interval
        # A missing file (mid-replace, or deleted) keeps the rules and the model in force.
        digest = _file_hash(self._file)
        if digest is not None and digest != self._seen:
            self.reload(digest)
        model_digest = _file_hash(self._model_file)
        if model_digest is not None and model_digest != self._seen_model:
            self.reload_model(model_digest)

    def reload_model(self, digest: str | None = None) -> bool:
        """Load the model file again; swap it in only if it is readable and fits the rules."""
        assert self._model_file is not None
        self._seen_model = digest
        try:
            model = RoutingModel.load(self._model_file)
            decider = Decider(self.decider.ruleset, model, self.decider.policy)
        except ModelError as exc:
            metrics.MODEL_RELOADS.labels("rejected").inc()
            log.error(
                "model_reload_rejected",
                extra={
                    "file": str(self._model_file),
                    "problem": str(exc)[:_DETAIL_MAX],
                    "model_version": self.decider.model_version,
                },
            )
            self._outcome("model_rejected")
            return False
        old = self.decider.model_version
        self.decider = decider
        metrics.set_model_version(model.version)
        metrics.MODEL_RELOADS.labels("applied").inc()
        log.info("model_reloaded", extra={"model_version": model.version, "previous_version": old})
        self._outcome("model_applied")
        return True

    def reload(self, digest: str | None = None) -> bool:
        """Load the organisation file again; swap the rules only if it is valid and declared."""
        assert self._file is not None
        try:
            organisation = load_organisation(self._file)
        except OrganisationError as exc:
            return self._rejected(digest, [str(p) for p in exc.problems])
        try:
            # Queues for new departments exist before the first request is routed to them.
            self._declare(organisation)
        except Exception as exc:  # broker trouble: the unchanged hash makes the next poll retry
            metrics.RULES_RELOADS.labels("failed").inc()
            log.warning(
                "rules_reload_failed",
                extra={"error": f"{type(exc).__name__}: {exc}"[:_DETAIL_MAX]},
            )
            self._outcome("failed")
            return False
        try:
            decider = Decider(
                RuleSet.from_organisation(organisation), self.decider.model, self.decider.policy
            )
        except ModelError as exc:
            # The new organisation lost a department the model routes to: keep both as they are.
            return self._rejected(digest, [str(exc)[:_DETAIL_MAX]])
        old = self.organisation.version
        self.organisation = organisation
        self.decider = decider
        self._seen = digest
        metrics.set_rules_version(organisation.version)
        metrics.RULES_RELOADS.labels("applied").inc()
        log.info(
            "rules_reloaded",
            extra={
                "rules_version": organisation.version,
                "previous_version": old,
                "departments": len(organisation.departments),
            },
        )
        self._outcome("applied")
        return True

    def _rejected(self, digest: str | None, problems: list[str]) -> bool:
        self._seen = digest
        metrics.RULES_RELOADS.labels("rejected").inc()
        log.error(
            "rules_reload_rejected",
            extra={
                "file": str(self._file),
                "problems": problems,
                "rules_version": self.decider.ruleset.version,
            },
        )
        self._outcome("rejected")
        return False

    def _outcome(self, outcome: str) -> None:
        with self._changed:
            self._outcomes[outcome] += 1
            self._changed.notify_all()


def _file_hash(path: Path | None) -> str | None:
    """The SHA-256 of a watched file; None without a file or when it cannot be read now."""
    if path is None:
        return None
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None
