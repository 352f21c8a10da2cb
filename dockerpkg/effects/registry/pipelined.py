"""Many "is it published, with which digest?" checks at once: worker threads, each sending its
checks in pipelined batches (``effects/pipeline.py``) on a connection of its own, and asking
anything but a plain 200 or 404 again through the session, which handles it fully.

A batch holds one slot of the registry's gate (one connection; the registry answers its
requests one after another). Its answers are the first try of each check: those saying the
registry is limited or struggling (429, 5xx) make the whole host back off, once, for the
longest wait any of them asks, before the session asks them again as their later tries."""

from __future__ import annotations

import random
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from urllib.parse import urlsplit

from dockerpkg.core.registrylimits import Attempt, Decision, Verdict
from dockerpkg.effects.pipeline import Answer, Endpoint, Head, PipelinedConnection
from dockerpkg.effects.registry.errors import RegistryCancelledError
from dockerpkg.effects.registry.gate import GateCancelledError, HostGate, give_up, judged
from dockerpkg.effects.registry.session import ACCEPT, RegistrySession, check_names

# Checks written at once on one connection: a round trip for many, a share for every worker
# when the checks are few, and few enough that the batch's requests (with tokens, about
# 1 KiB each) and answers fit the socket buffers: the server never waits for us to read
# while we still write.
_BATCH = 32


class PipelinedChecks:
    """Manifest digests of many refs, asked concurrently; FALLBACK answers one ref the slow,
    thorough way (repository, tag, and the tries of it made already). Safe to share between
    threads."""

    def __init__(
        self,
        session: RegistrySession,
        workers: int,
        fallback: Callable[[str, str, int], str | None],
    ) -> None:
        self._session = session
        self._workers = workers
        self._fallback = fallback
        # One pipelined connection per worker thread.
        self._local = threading.local()
        self._connections: list[PipelinedConnection] = []
        self._lock = threading.Lock()  # guards _connections

    def close(self) -> None:
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()

    def digests(
        self, refs: Iterable[tuple[str, str]], cancel: threading.Event | None = None
    ) -> dict[tuple[str, str], str | None]:
        """The digest of every ``(repository, tag)`` (None: not published), one entry per
        distinct ref, in the order given. If any check fails, the first failure is raised and
        the checks not yet started are cancelled; a set CANCEL does the same, raising
        RegistryCancelledError."""
        session = self._session
        unique = list(dict.fromkeys(refs))
        for repository, tag in unique:
            check_names(repository, tag)
        if not unique:
            return {}
        # Decide scheme and authentication here, once, rather than in every worker at once.
        base_url = session.auth.ensure_ready()
        workers = min(self._workers, len(unique))
        # Every worker gets a share when the refs are few; batches stay short when many, and
        # never hold more requests than the host's rate lets start in a minute.
        rate = session.gates.host(urlsplit(base_url).netloc).limits.per_minute
        size = min(_BATCH, -(-len(unique) // workers), rate or _BATCH)
        batches = [unique[start : start + size] for start in range(0, len(unique), size)]
        answers: dict[tuple[str, str], str | None] = {}
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="registry") as pool:
            session.auth.prefetch_tokens(
                pool, [f"repository:{session.api_repository(r)}:pull" for r, _ in unique]
            )
            futures = [pool.submit(self._quick_digests, cancel, batch) for batch in batches]
            try:
                for future in as_completed(futures):
                    answers.update(future.result())
            except BaseException as exc:
                if not isinstance(exc, Exception):  # a signal: end the waits in flight
                    session.transport.interrupter.interrupt()
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        return {ref: answers[ref] for ref in unique}

    def _quick_digests(
        self, cancel: threading.Event | None, batch: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], str | None]:
        """The digests of BATCH, pipelined on a connection kept by this thread.

        Only the common answers (200 with a digest, 404) are taken from the pipeline; anything
        else (a token to renew, an error, a redirect, no answer at all) is asked again through
        the fallback.
        """
        if cancel is not None and cancel.is_set():
            raise RegistryCancelledError("cancelled")
        base_url = self._session.auth.ensure_ready()
        connection = self._thread_connection(base_url)
        quick: Sequence[Answer | None] = [None] * len(batch)
        tried = [0] * len(batch)
        if connection is not None:
            heads = [self._quick_head(*ref) for ref in batch]
            gate = self._session.gates.host(urlsplit(base_url).netloc)
            try:
                interrupted = self._session.transport.interrupter.event
                with gate.slot(interrupted, requests=len(heads)):
                    quick = connection.heads(heads)
            except GateCancelledError:
                raise RegistryCancelledError("interrupted") from None
            tried = self._judge(gate, batch, heads, quick)
        answers: dict[tuple[str, str], str | None] = {}
        for ref, answer, count in zip(batch, quick, tried, strict=True):
            if answer is not None and answer.status == 404:
                answers[ref] = None
                continue
            if answer is not None and answer.status == 200 and answer.digest:
                answers[ref] = answer.digest
                continue
            if cancel is not None and cancel.is_set():
                raise RegistryCancelledError("cancelled")
            answers[ref] = self._fallback(*ref, count)
        return answers

    def _judge(
        self,
        gate: HostGate,
        batch: Sequence[tuple[str, str]],
        heads: Sequence[Head],
        quick: Sequence[Answer | None],
    ) -> list[int]:
        """Decide on every answer of a batch, each one the first try of its check, all got
        at once: the host backs off once, for the longest host-wide wait among them (a
        retry counted for each answer asked again, a limit for each limited one); this
        thread waits out the longest of the others (a 500: those checks alone wait). A check
        given up on fails the batch. Returns the tries made of each check: 1 for those to
        ask again, 0 for the rest (an answer to hand back, or none at all)."""
        session = self._session
        tried = [0] * len(batch)
        retrying: list[Decision] = []
        now = time.time()
        for index, answer in enumerate(quick):
            if answer is None or answer.status in (200, 404):
                continue
            attempt = Attempt(answer.status, retry_after=answer.retry_after)
            jitter = random.random()  # noqa: S311 (spreading, not secrecy)
            decision = judged(attempt, 1, gate.limits, now, jitter, attempts=session.retry.attempts)
            if decision.verdict is Verdict.ACCEPT:
                continue
            if decision.verdict is Verdict.GIVE_UP:
                repository, tag = batch[index]
                url = session.auth.ensure_ready() + heads[index].path
                error = give_up(gate, decision, attempt, tries=1, now=now, last=None)
                raise session.transport.gave_up(error, url, f"{repository}:{tag}", None)
            tried[index] = 1
            retrying.append(decision)
        if retrying:
            gate.back_off_all(retrying)
            alone = [d.wait for d in retrying if not d.host_wide]
            if alone:
                try:
                    gate.pause(session.transport.interrupter.event, max(alone))
                except GateCancelledError:
                    raise RegistryCancelledError("interrupted") from None
        return tried

    def _quick_head(self, repository: str, tag: str) -> Head:
        repo = self._session.api_repository(repository)
        headers = {"Accept": ACCEPT}
        header = self._session.auth.authorization(f"repository:{repo}:pull", fresh=False).header
        if header is not None:
            headers["Authorization"] = header
        return Head(f"/v2/{repo}/manifests/{tag}", headers)

    def _thread_connection(self, base_url: str) -> PipelinedConnection | None:
        """This thread's connection, or None where a proxy is in the way (requests does it)."""
        connection: PipelinedConnection | None = getattr(self._local, "connection", None)
        if connection is not None:
            return connection
        transport = self._session.transport
        if transport.proxies_for(base_url):
            return None
        url = urlsplit(base_url)
        context = None
        if url.scheme == "https":
            verify = transport.verify
            context = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
        endpoint = Endpoint(
            url.hostname or self._session.host,
            url.port or (443 if url.scheme == "https" else 80),
            context,
            self._session.retry.connect_timeout,
            self._session.retry.read_timeout,
        )
        connection = PipelinedConnection(endpoint, url.netloc, transport.interrupter.watch)
        self._local.connection = connection
        with self._lock:
            self._connections.append(connection)
        return connection
