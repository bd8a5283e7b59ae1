"""Observe-time predictions, computed after the observe has answered and before anything can tell.

KATO computes predictions during every observe and keeps them for cognition-data (spec §2.1; they are not in
the observe response). Here an observe stores what to compute them from (the pending record: kb_id, STM,
session config, unique_id and a record id of its own) and answers; the predictions are computed later, by
whichever comes first:

- ``settle(session_id)``: cognition-data reads them, or a background worker gets to them
  (``SettleWorker``, ``SETTLE_DELAY_SECONDS`` after the observe);
- ``settle_kb(kb_id)``: anything about to change the KB other than a learn (bulk learn, import, clear-all,
  finalize-training) first settles every pending record of that KB (the cluster backend calls it as its
  ``before_change`` hook), so they see the KB as it was when their observe answered. An observe that answered
  before the change began has stored its record by then.

A learn (and auto-learn) does not wait: its commit keeps, for every pending record of the KB, the values it
overwrites (``cluster.stores.kb_overlay``), and the predictions are computed through that overlay whenever they
are: the shards hide the patterns learned since, the statistics are read as they were.

A record replaced before it was settled (the session observed again, or cleared its STM) is never
computed: those predictions could no longer be read. Settling stores the predictions only if the record is
still the one they were computed from, so concurrent settlers and observes on other replicas are safe.
"""

from __future__ import annotations

import heapq
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, Protocol

from cluster.stores.kb_keys import KBKeys
from cluster.stores.kb_overlay import overlay_key
from cluster.stores.sessions import SessionStore
from schema.rules.query import QueryOptions

SETTLE_DELAY_SECONDS = 0.1  # a session observing faster than this only has its latest record computed
ANSWER_WAIT_SECONDS = 30.0  # the longest a settle waits for a GET computing the same record in this process
ANSWERS_KEPT = 128  # GET answers kept for records this process may settle: one settles within the delay, and
# a record observed on another replica is settled there, so its answer here only waits to be pushed out

log = logging.getLogger(__name__)


class ViewPredictor(Protocol):
    def predict(self, kb_id: str, stm: Sequence[Sequence[str]], options: QueryOptions, as_of: str | None = None
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Predictions over the KB as it was before the learns the overlay ``as_of`` records."""
        ...


class PendingPredictions:
    def __init__(self, sessions: SessionStore, backend: ViewPredictor):
        self.sessions = sessions
        self.backend = backend
        self._answered: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()  # by record id
        self._answering: dict[str, threading.Event] = {}  # record id -> set once a GET's answer is kept or lost
        self._lock = threading.Lock()

    def settle(self, session_id: str, record_id: str | None = None) -> bool:
        """Compute and store the session's pending predictions (only if its record is ``record_id``, when
        given); False if there were none to compute. An answer a GET predictions remembered for the record is
        stored instead, when no learn has changed the KB since the observe."""
        pending, overlay = self.sessions.pending(session_id)
        if pending is None:
            return False
        record = json.loads(pending)
        if record_id is not None and record["record"] != record_id:
            return False
        with self._lock:
            answering = self._answering.get(record["record"])
        if answering is not None:  # a GET computes this record's answer (slower than the settle delay): wait
            answering.wait(ANSWER_WAIT_SECONDS)
        with self._lock:
            answered = self._answered.pop(record["record"], None)
        if answered is not None and self.sessions.settle(session_id, pending, answered, if_unchanged=True):
            return True
        hidden = overlay.learned(KBKeys(record["kb_id"], self.sessions.tag))
        options = replace(QueryOptions.from_config(record["config"]), hidden=hidden)
        predictions, _ = self.backend.predict(record["kb_id"], record["stm"], options,
                                              overlay_key(session_id, self.sessions.tag))
        self.sessions.settle(session_id, pending, predictions)
        return True

    @contextmanager
    def answering(self, pending: str | None, kb_id: str, stm: Sequence[Sequence[str]], config: dict[str, Any]
                  ) -> Iterator[Callable[[list[dict[str, Any]]], None]]:
        """Around a GET predictions over the KB as it is, for this STM and config: yields what keeps its answer
        for ``pending``, the record read before it, when the record asks for the same computation. If no learn
        changes the KB before the record is settled (other changes settle it first), both answers are one and
        the record is not computed a second time; a settle of that record in this process meanwhile waits for
        the answer instead of computing it alongside. Nothing is written: a record replaced first costs
        nothing."""
        record = json.loads(pending) if pending is not None else None
        if record is None or record["kb_id"] != kb_id or record["stm"] != [list(e) for e in stm] or \
                record["config"] != json.loads(json.dumps(config)):
            yield lambda predictions: None
            return
        record_id, done = record["record"], threading.Event()
        with self._lock:
            self._answering[record_id] = done
        try:
            yield lambda predictions: self._keep(record_id, predictions)
        finally:
            with self._lock:
                if self._answering.get(record_id) is done:
                    del self._answering[record_id]
            done.set()

    def _keep(self, record_id: str, predictions: list[dict[str, Any]]) -> None:
        with self._lock:
            self._answered[record_id] = predictions
            while len(self._answered) > ANSWERS_KEPT:
                self._answered.popitem(last=False)

    def settle_kb(self, kb_id: str) -> None:
        for session_id in self.sessions.pending_sessions(kb_id):
            self.settle(session_id)
            self.sessions.forget_settled(kb_id, session_id)


class SettleWorker:
    """One background thread per process settling each record ``delay`` seconds after its observe, unless it
    was replaced meanwhile (the replacing observe scheduled its own)."""

    def __init__(self, pending: PendingPredictions, delay: float = SETTLE_DELAY_SECONDS):
        self.pending = pending
        self.delay = delay
        self._due: list[tuple[float, int, str, str]] = []  # (due, order, session_id, record_id)
        self._count = 0
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def schedule(self, session_id: str, record_id: str) -> None:
        with self._wake:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="settle-predictions", daemon=True)
                self._thread.start()
            self._count += 1
            heapq.heappush(self._due, (time.monotonic() + self.delay, self._count, session_id, record_id))
            self._wake.notify()

    def _next(self) -> tuple[str, str]:
        with self._wake:
            while True:
                if self._due and self._due[0][0] <= time.monotonic():
                    _, _, session_id, record_id = heapq.heappop(self._due)
                    return session_id, record_id
                self._wake.wait(None if not self._due else self._due[0][0] - time.monotonic())

    def _run(self) -> None:
        while True:
            session_id, record_id = self._next()
            try:
                self.pending.settle(session_id, record_id)
            except Exception:  # noqa: BLE001 - the record stays pending; a reader or a KB change settles it
                log.warning("could not settle the predictions of session %s yet", session_id, exc_info=True)
