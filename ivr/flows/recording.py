"""Recording a call with its agent: MixMonitor on the caller's channel, per leg.

A queue whose ``routing.yaml`` entry says ``record: true`` has each call with an
agent recorded as three WAV files: what the caller's channel receives (``r()``:
the caller), what it sends (``t()``: the agent) and the mix. The engine starts
``MixMonitor`` through AGI just before the ``Dial`` (option ``b``: audio only
while the channel is bridged, so the ringing is not in it) and stops it with
``StopMixMonitor`` as soon as ``Dial`` returns (StopMixMonitor is also what
makes app_mixmonitor.c close the files before the flow goes on). So the flow's
own nodes are never recorded, before or after the agent: a ``gather`` marked
sensitive, wherever it is in the flow, never reaches a recording, and no
``MixMonitorMute`` (an AMI action; app_mixmonitor.c offers no dialplan
application to mute) is needed.

A flow variable ``record`` set false (``set: {record: false}`` after a caller's
"no" to the announcement) turns the recording off for that call.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import structlog

from ivr.errors import AgiError, ChannelHangup
from routing.errors import RoutingError

if TYPE_CHECKING:
    from ivr.flows.run import Run
    from routing.config import QueueConfig

__all__ = ["Recorder", "Recording", "declined", "start", "stop"]

log = structlog.get_logger("ivr.recording")

#: Values of the flow variable ``record`` that turn the recording off.
_OFF = frozenset({"false", "0", "no", "off", ""})


@dataclass(frozen=True, slots=True)
class Recording:
    """One agent call's recording: where each leg is, whose call, until when it is kept."""

    call: str
    queue: str
    agent: str
    language: str
    #: ``r()``: what the caller's channel receives, the caller's voice.
    caller: str
    #: ``t()``: what the channel sends to the caller, the agent's voice.
    agent_leg: str
    mix: str
    started: float
    #: When the files are deleted (epoch seconds).
    expires: float

    def fields(self) -> dict[str, str]:
        """As the event stream's string fields."""
        return {k: str(v) for k, v in asdict(self).items()}

    @property
    def base(self) -> Path:
        """The files' common stem: ``<base>.json`` holds this record, ``<base>.transcript.json``
        the transcript."""
        return Path(self.mix.removesuffix("-mix.wav"))


class Recorder(Protocol):
    """Where recordings go, and who hears of them once they are complete (the QA worker)."""

    @property
    def folder(self) -> Path: ...

    def planned(self, recording: Recording) -> None:
        """The recording is about to start (its record is kept, for the retention sweep)."""

    def finished(self, recording: Recording, *, answered: bool) -> None:
        """The agent call is over and the files are closed (or, unanswered, unneeded)."""


def declined(run: Run) -> bool:
    """The caller said no to the recording (the flow set ``record`` false)."""
    if "record" not in run.variables:
        return False
    value = run.variables["record"]
    return str(value).strip().lower() in _OFF if not isinstance(value, bool) else not value


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", text)[:80] or "x"


async def start(run: Run, queue: str, agent: str, config: QueueConfig) -> Recording | None:
    """MixMonitor before the Dial to ``agent`` when the queue records and the caller agreed."""
    recorder = run.engine.recorder
    if not config.record or recorder is None:
        return None
    if declined(run):
        run.event("recording_declined", queue=queue)
        return None
    now = time.time()
    day = time.strftime("%Y-%m-%d", time.gmtime(now))
    stem = f"{_safe(run.channel.uniqueid)}-{_safe(agent)}-{int(now * 1000) % 100000:05d}"
    base = recorder.folder.resolve() / day / stem
    recording = Recording(
        call=run.channel.uniqueid,
        queue=queue,
        agent=agent,
        language=run.language,
        caller=f"{base}-caller.wav",
        agent_leg=f"{base}-agent.wav",
        mix=f"{base}-mix.wav",
        started=now,
        expires=now + config.retention,
    )
    recorder.planned(recording)
    try:
        # b: only while bridged (no ringing); r()/t(): the two legs apart.
        await run.channel.exec(
            "MixMonitor", recording.mix, f"br({recording.caller})t({recording.agent_leg})"
        )
    except (AgiError, ChannelHangup) as exc:
        run.event("recording_failed", queue=queue, error=str(exc))
        recorder.finished(recording, answered=False)
        return None
    run.event("recording", queue=queue, agent=agent, file=recording.mix)
    return recording


async def stop(run: Run, recording: Recording, *, answered: bool) -> None:
    """StopMixMonitor (the files are closed before the flow goes on), the event in the
    stream, and the recording handed to the recorder (QA)."""
    recorder = run.engine.recorder
    try:
        try:
            if not run.channel.hung_up:
                await run.channel.exec("StopMixMonitor")
        except ChannelHangup:
            pass  # the caller went: MixMonitor stops with the channel
        except AgiError as error:  # still recording: say so, the call goes on
            log.warning("recording.stop_failed", error=str(error))
        router = run.engine.router
        if answered and router is not None:
            try:
                await router.note("recording", **recording.fields())
            except RoutingError as error:  # the files are kept and checked all the same
                log.warning("recording.event_lost", error=str(error), base=str(recording.base))
    finally:  # a cancelled call (the caller gone) still has its recording checked
        if recorder is not None:
            recorder.finished(recording, answered=answered)
