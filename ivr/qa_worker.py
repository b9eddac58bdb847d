"""The engine's QA worker: each recorded agent call checked once it ends; old ones deleted.

The queue node hands each recording over when its Dial returns (the files are
closed by then: StopMixMonitor). The worker transcribes both legs in
``speech.qa``'s pool (threads, off the event loop, the engine's loaded model),
stores the transcript next to the recording (``<base>.transcript.json``),
applies the language's rule pack (``<rules>/<language>.yaml``) and writes
``qa_result`` to the event stream; a result with a violation is also POSTed to
the webhook, when one is configured. Recordings are never served by the engine.

Each recording has a record next to it (``<base>.json``: the call, queue, agent
and when it expires, from the queue's ``retention``); :meth:`QaWorker.sweep`
deletes what has expired, and the engine runs it every hour.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
import structlog

from ivr.flows.recording import Recording
from routing.errors import RoutingError
from routing.types import Router
from speech.qa import CallResult, Evidence, QaError, RulePack, Transcriber, evaluate, load_pack

__all__ = ["QaWorker", "result_fields"]

log = structlog.get_logger("ivr.qa")

#: The files of one recording, by suffix after its base.
_SUFFIXES = ("-caller.wav", "-agent.wav", "-mix.wav", ".transcript.json", ".json")


def result_fields(recording: Recording, result: CallResult, transcript: Path) -> dict[str, str]:
    """``qa_result``'s fields: per rule its outcome, times and matched words (JSON)."""
    rules = [
        {
            "id": rule.id,
            "kind": rule.kind,
            "outcome": rule.outcome,
            "weight": rule.weight,
            "reason": rule.reason,
            "evidence": [_evidence(e) for e in rule.evidence],
        }
        for rule in result.rules
    ]
    return {
        "call": recording.call,
        "queue": recording.queue,
        "agent": recording.agent,
        "language": result.language,
        "pack": result.pack,
        "score": "" if result.score is None else f"{result.score:g}",
        "violations": ",".join(r.id or r.kind for r in result.violations),
        "duration": f"{result.duration:.1f}",
        "rules": json.dumps(rules, ensure_ascii=False, separators=(",", ":")),
        "recording": recording.mix,
        "transcript": str(transcript),
    }


def _evidence(evidence: Evidence) -> dict[str, Any]:
    return {
        "start": evidence.start,
        "end": evidence.end,
        "speaker": evidence.speaker,
        "words": list(evidence.words),
        "phrase": evidence.phrase,
    }


class QaWorker:
    """The engine's :class:`~ivr.flows.recording.Recorder`: records kept, calls checked."""

    def __init__(
        self,
        folder: Path,
        *,
        router: Router | None,
        transcriber: Transcriber | None,
        rules: Path,
        webhook: str = "",
        settle: float = 0.2,
    ) -> None:
        self._folder = folder
        self.router = router
        self.transcriber = transcriber
        self.rules = rules
        self.webhook = webhook
        self.settle = settle
        self._packs: dict[str, tuple[float, RulePack]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def folder(self) -> Path:
        return self._folder

    def planned(self, recording: Recording) -> None:
        base = recording.base
        base.parent.mkdir(parents=True, exist_ok=True)
        Path(f"{base}.json").write_text(json.dumps(asdict(recording)), encoding="utf-8")

    def finished(self, recording: Recording, *, answered: bool) -> None:
        if not answered:  # nobody talked: nothing to keep
            _delete(recording.base)
            return
        task = asyncio.ensure_future(self._check(recording))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for the checks under way (shutdown, tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def pack(self, language: str) -> RulePack | None:
        """``<rules>/<language>.yaml``, reloaded when it changes; None without one."""
        path = self.rules / f"{language}.yaml"
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return None
        cached = self._packs.get(language)
        if cached is None or cached[0] != mtime:
            cached = (mtime, load_pack(path))
            self._packs[language] = cached
        return cached[1]

    async def _check(self, recording: Recording) -> None:
        try:
            await self._evaluate(recording)
        except (QaError, OSError) as exc:
            log.error("qa.failed", call=recording.call, error=str(exc))  # noqa: TRY400
            await self._note("qa_failed", call=recording.call, queue=recording.queue,
                             agent=recording.agent, error=str(exc))  # fmt: skip
        except Exception:
            log.exception("qa.failed", call=recording.call)

    async def _evaluate(self, recording: Recording) -> None:
        legs = [Path(recording.agent_leg), Path(recording.caller)]
        await _settled(legs, self.settle)
        pack = self.pack(recording.language)
        if pack is None or self.transcriber is None:
            log.info("qa.no_pack", language=recording.language, rules=str(self.rules))
            return
        transcript = await self.transcriber.transcribe(
            recording.language, agent=legs[0], caller=legs[1]
        )
        stored = Path(f"{recording.base}.transcript.json")
        await asyncio.to_thread(stored.write_text, transcript.dumps(), "utf-8")
        result = evaluate(transcript, pack, name=f"{recording.language}.yaml")
        fields = result_fields(recording, result, stored)
        await self._note("qa_result", **fields)
        log.info("qa.result", call=recording.call, score=fields["score"],
                 violations=fields["violations"])  # fmt: skip
        if result.violations and self.webhook:
            await self._post(fields)

    async def _note(self, event: str, **fields: str) -> None:
        if self.router is None:
            return
        try:
            await self.router.note(event, **fields)
        except RoutingError as exc:
            log.error("qa.not_recorded", event=event, error=str(exc))  # noqa: TRY400

    async def _post(self, fields: dict[str, str]) -> None:
        body: dict[str, Any] = {**fields, "rules": json.loads(fields["rules"])}
        try:
            async with httpx.AsyncClient(timeout=10.0) as client:
                reply = await client.post(self.webhook, json={"event": "qa_result", **body})
                reply.raise_for_status()
        except httpx.HTTPError as exc:
            log.warning("qa.webhook_failed", error=str(exc), call=fields["call"])

    def sweep(self, now: float | None = None) -> int:
        """Delete the recordings whose retention has passed; how many went."""
        now = time.time() if now is None else now
        gone = 0
        for record in self._folder.glob("*/*.json"):
            if record.name.endswith(".transcript.json"):
                continue
            try:
                expires = float(json.loads(record.read_text(encoding="utf-8"))["expires"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if expires <= now:
                _delete(Path(str(record).removesuffix(".json")))
                gone += 1
        for day in self._folder.glob("*"):
            with contextlib.suppress(OSError):
                day.rmdir()  # only when empty
        return gone

    async def sweep_every(self, seconds: float) -> None:
        while True:
            gone = await asyncio.to_thread(self.sweep)
            if gone:
                log.info("recordings.deleted", count=gone)
            await asyncio.sleep(seconds)


async def _settled(paths: list[Path], pause: float) -> None:
    """Until the legs stop growing (Asterisk closes them just after StopMixMonitor)."""
    sizes: list[int] = []
    for _ in range(50):
        now = [p.stat().st_size if p.exists() else -1 for p in paths]
        if now == sizes and min(now) >= 0:
            return
        sizes = now
        await asyncio.sleep(pause)


def _delete(base: Path) -> None:
    for suffix in _SUFFIXES:
        try:
            Path(f"{base}{suffix}").unlink(missing_ok=True)
        except OSError as error:  # kept past its retention: somebody must know
            log.error("qa.recording_not_deleted", file=f"{base}{suffix}", error=str(error))  # noqa: TRY400 - an outcome, no traceback
