"""An Asterisk emulator for tests, ``ivr call`` and load generation.

:class:`AsteriskEmulator` connects to a FastAGI server exactly as Asterisk 22
does and plays a caller script against it::

    emulator = AsteriskEmulator(port=server.port)
    result = await emulator.call(
        "main-menu",
        callerid="5551234",
        actions=[Press("2", on="STREAM FILE", after=1.0), Hangup(at=30)],
        dial={"PJSIP/1001": DialOutcome("NOANSWER")},
    )
    assert result.dialled == ["PJSIP/1001"]  # the Dial targets

Its replies reproduce the captured Asterisk 22 sessions in
``shared/asterisk/transcripts/`` byte for byte (tests/integration). Waits are
skipped by default (``speed=None``) so a 30-second call takes milliseconds;
``speed=1.0`` runs in real time.

With ``await emulator.start_ami()`` it also runs Asterisk's AMI on a free
loopback port (``emulator.ami.port``, user ``ivr`` / ``ivr-secret``): calls
placed with :meth:`AsteriskEmulator.call` then show there (Newchannel, the
Dial legs, bridges, hang-ups), and ``emulator.pbx`` holds the emulated
endpoints (``pbx.add_endpoint("PJSIP/200", outcome="noanswer")``,
``pbx.set_registered(...)``) that Originate and ChanSpy use.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from ivr.emulator.agi import AGI_BUF_LEN, AgiSession, Exchange, SessionResult
from ivr.emulator.ami import AmiServer, AmiUser, Pbx
from ivr.emulator.apps import App, Applications
from ivr.emulator.audiosocket import AudioSocketApp, AudioSocketRecord
from ivr.emulator.caller import Action, DialOutcome, Hangup, Keys, Press, Talk, Timeline, say
from ivr.emulator.sounds import SoundCatalog

__all__ = [
    "Action",
    "AmiServer",
    "AmiUser",
    "AsteriskEmulator",
    "AudioSocketApp",
    "AudioSocketRecord",
    "DialOutcome",
    "Exchange",
    "Hangup",
    "Keys",
    "Pbx",
    "Press",
    "SessionResult",
    "SoundCatalog",
    "Talk",
    "say",
]

#: What the transcripts' Asterisk 22 (a source build) reports as agi_version.
DEFAULT_VERSION = "UNKNOWN__and_probably_unsupported"


class AsteriskEmulator:
    """Plays Asterisk's side of FastAGI calls towards ``host:port``."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 4573,
        *,
        speed: float | None = None,
        sounds: SoundCatalog | None = None,
        sound_dirs: Iterable[Path] = (),
        dial: Mapping[str, DialOutcome] | None = None,
        default_dial: DialOutcome | None = None,
        version: str = DEFAULT_VERSION,
        connect_timeout: float = 2.0,
        applications: Mapping[str, App] | None = None,
        pbx: Pbx | None = None,
        record_dir: Path | None = None,
        agi_buffer: int = AGI_BUF_LEN,
        hangup_notice: str = "timed",
        on_exchange: Callable[[Exchange], None] | None = None,
    ) -> None:
        #: Told of every command and reply of every call as they happen.
        self.on_exchange = on_exchange
        #: When a hang-up during a command is told: ``timed`` (as Asterisk 22.9: about
        #: 40 ms after the interrupted reply, or with the next command if it comes
        #: first), ``next_command`` (only then) or ``after_reply`` (at once).
        self.hangup_notice = hangup_notice
        self.host = host
        #: res_agi.c's AGI_BUF_LEN: 8192 (Asterisk 22.6 / 21.11 / 20.16 on), 2048 before.
        self.agi_buffer = agi_buffer
        #: RECORD FILE writes the caller's scripted audio under this folder (a
        #: spool shared with the engine, as with Asterisk); None writes nothing.
        self.record_dir = record_dir
        self.port = port
        self.speed = speed
        self.sounds = sounds or SoundCatalog(sound_dirs=sound_dirs)
        self.dial = dict(dial or {})
        self.default_dial = default_dial
        self.version = version
        self.connect_timeout = connect_timeout
        #: Extra dialplan applications for EXEC: name -> async (session, data) -> result.
        self.applications = dict(applications or {})
        #: astdb shared by all calls of this emulator (DATABASE GET/PUT/DEL).
        self.database: dict[tuple[str, str], str] = {}
        self._serial = itertools.count()
        self._epoch = int(time.time())
        #: Channels and endpoints the AMI shows (shared with :attr:`ami`).
        self.pbx = pbx or Pbx(epoch=self._epoch)
        #: The emulated AMI server, once :meth:`start_ami` ran.
        self.ami: AmiServer | None = None

    async def start_ami(
        self,
        *,
        port: int = 0,
        users: Mapping[str, AmiUser] | None = None,
        login_failure_delay: float = 1.0,
    ) -> AmiServer:
        """Run the AMI on 127.0.0.1:``port`` (0: a free one) and return it."""
        if self.ami is None:
            self.ami = AmiServer(
                self.host,
                port,
                users=users,
                pbx=self.pbx,
                login_failure_delay=login_failure_delay,
                speed=self.speed,
            )
            await self.ami.start()
        return self.ami

    async def close(self) -> None:
        """Stop the AMI server (calls stop by themselves)."""
        if self.ami is not None:
            await self.ami.close()
            self.ami = None

    def environment(
        self,
        script: str,
        *,
        channel: str | None = None,
        uniqueid: str | None = None,
        callerid: str = "unknown",
        calleridname: str = "unknown",
        language: str = "en",
        context: str = "ivr",
        extension: str | None = None,
        priority: int = 2,
        args: Sequence[str] = (),
        request: str | None = None,
        threadid: str = "140505378391744",
        dnid: str = "unknown",
        accountcode: str = "",
    ) -> dict[str, str]:
        """The environment block Asterisk sends, in its order (res_agi.c setup_env)."""
        serial = next(self._serial)
        path = script.partition("?")[0]
        extension = extension or path or "s"
        channel = channel or f"PJSIP/caller-{serial:08x}"
        env: dict[str, str] = {"agi_network": "yes"}
        if path:
            env["agi_network_script"] = script
        env.update(
            agi_request=request or f"agi://{self.host}:{self.port}/{script}",
            agi_channel=channel,
            agi_language=language,
            agi_type=channel.split("/", 1)[0],
            agi_uniqueid=uniqueid or self.pbx.next_uniqueid(),  # one sequence with AMI's
            agi_version=self.version,
            agi_callerid=callerid,
            agi_calleridname=calleridname,
            agi_callingpres="67" if callerid == "unknown" else "0",
            agi_callingani2="0",
            agi_callington="0",
            agi_callingtns="0",
            agi_dnid=dnid,
            agi_rdnis="unknown",
            agi_context=context,
            agi_extension=extension,
            agi_priority=str(priority),
            agi_enhanced="0.0",
            agi_accountcode=accountcode,
            agi_threadid=threadid,
        )
        for number, value in enumerate(args, start=1):
            env[f"agi_arg_{number}"] = value
        return env

    async def call(
        self,
        script: str = "",
        *,
        actions: Sequence[Action] = (),
        dial: Mapping[str, DialOutcome] | None = None,
        variables: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        timeline: Timeline | None = None,
        **env_fields: object,
    ) -> SessionResult:
        """Place one call running ``AGI(agi://host:port/<script>)`` and play ``actions``.

        Returns what happened; ``agistatus`` is ``FAILURE`` when the engine
        could not be reached (the dialplan's fallback would run).
        """
        block = dict(env) if env is not None else self.environment(script, **env_fields)  # type: ignore[arg-type]
        clock = timeline or Timeline(list(actions), speed=self.speed)
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), self.connect_timeout
            )
        except (OSError, TimeoutError):
            return SessionResult(agistatus="FAILURE", connected=False)
        apps = Applications(
            {**self.dial, **(dial or {})},
            self.default_dial,
            pbx=self.pbx if self.ami is not None else None,
        )
        for name, app in self.applications.items():
            apps.add(name, app)
        session = AgiSession(
            reader,
            writer,
            clock,
            block,
            sounds=self.sounds,
            apps=apps,
            variables=variables,
            database=self.database,
            record_dir=self.record_dir,
            buffer_size=self.agi_buffer,
            notice=self.hangup_notice,
            on_exchange=self.on_exchange,
        )
        return await session.run()
