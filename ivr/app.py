"""Composition root: the one place that wires FastAGI, flows, speech and routing.

``agi://engine/<flow id>`` runs the flow of that id from the flows folder
(``dialplans/``), reloaded when its file changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
from collections.abc import Awaitable, Callable, Iterator, Mapping

import structlog
import uvicorn

from ivr.agi.channel import Channel
from ivr.agi.server import FastAgiServer, Handler
from ivr.ami import AmiClient, AmiConfig, AmiError, AmiLoginError, AmiSetupError, Resync
from ivr.api import build_api
from ivr.audiosocket.server import AudioSocketServer
from ivr.auth import TokenBook
from ivr.backoff import Backoff
from ivr.centre.callbacks import CallbackWorker
from ivr.centre.presence import Presence
from ivr.centre.supervise import Supervisors
from ivr.centre.tracker import AnswerTracker
from ivr.config import Settings, service_urls, speech_languages
from ivr.console.engine_calls import follow_calls
from ivr.console.metrics import observe_asr
from ivr.demo_api import start_demo_api
from ivr.errors import AgiError, ChannelHangup, ConfigError
from ivr.flows.interpreter import Engine, Router
from ivr.flows.ports import FileAnnouncements, PooledHttp, SpeechPrompts
from ivr.flows.problems import FlowError
from ivr.flows.prompts import flow_languages, prompt_texts
from ivr.flows.registry import FlowRegistry
from ivr.instance import engine_lock
from ivr.qa_worker import QaWorker
from ivr.routing_config import agent_of, load_routing_file
from ivr.speech_input import SpeechInput
from routing.config import RoutingConfig
from routing.embedded import EmbeddedRedis
from routing.errors import RoutingError
from routing.memory import Agent, MemoryRouter
from routing.redis import RedisRouter
from speech.models import ModelStore
from speech.qa import Transcriber
from speech.recognizer import ModelRegistry, Recognizer

__all__ = ["build", "flow_handler", "serve"]

log = structlog.get_logger("ivr.app")


#: Until agents come from routing.yaml (the routing issue), the demo has one
#: agent on PJSIP/1001 who can take every queue of the demo flows.
DEMO_AGENTS = (Agent("demo", "PJSIP/1001", {"billing": 5, "support": 5, "internet": 5, "tv": 5}),)


#: The engine's own secrets: never readable by a flow's ``${env:...}``.
ENGINE_SECRETS = frozenset(
    {
        "IVR_AMI_SECRET",
        "IVR_AMI_SECRET_FILE",
        "IVR_API_TOKEN",
        "IVR_API_TOKENS",
        "IVR_API_TOKENS_FILE",
        "IVR_REDIS_URL",
    }
)


def flow_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """What flows may read with ``${env:IVR_*}``: IVR_* minus the engine's own secrets."""
    return {k: v for k, v in environ.items() if k.startswith("IVR_") and k not in ENGINE_SECRETS}


def flow_handler(registry: FlowRegistry, engine: Engine) -> Handler:
    """The FastAGI handler: ``agi://engine/<flow id>`` runs that flow."""

    async def handle(channel: Channel) -> None:
        flow = registry.get(channel.env.script)
        if flow is None:
            log.error("flow.unknown", script=channel.env.script, known=registry.ids)
            await channel.send_failure()  # the dialplan's fallback takes the caller
            return
        await engine.run(channel, flow)
        if not channel.hung_up:
            # The generated dialplan sends a call whose AGI ends without this to
            # its fallback (AGISTATUS can read FAILURE after a normal end, and
            # reads SUCCESS when the engine dies mid-call): asterisk_conf/.
            with contextlib.suppress(ChannelHangup, AgiError):
                await channel.set_variable("IVR_DONE", "1")

    return handle


def build(
    settings: Settings, router: Router | None = None
) -> tuple[FastAgiServer, FlowRegistry, Engine]:
    services = service_urls(settings)  # a flow naming another service is refused at load
    registry = FlowRegistry(settings.flows_dir, services=services)
    for problem in registry.reload():
        log.error("flows.problem", problem=str(problem))
    engine = Engine(
        flows=registry.get,
        services=services,
        prompts=SpeechPrompts(settings.prompts_dir),
        router=router or MemoryRouter(Agent(a.id, a.endpoint, dict(a.skills)) for a in DEMO_AGENTS),
        http=PooledHttp(),  # one pooled client for every call, closed in _serve
        announcements=FileAnnouncements(settings.announcements_file),
        environ=flow_environ(os.environ),
        transfer_allow=tuple(p.strip() for p in settings.transfer_allow.split(",") if p.strip()),
        internal_dial=settings.internal_dial,
        external_dial=settings.external_dial,
        site=settings.site,
    )
    server = FastAgiServer(
        default=flow_handler(registry, engine),
        host=settings.agi_host,
        port=settings.agi_port,
        max_calls=settings.max_calls,
        command_timeout=settings.command_timeout,
        env_timeout=settings.env_timeout,
        hangup_grace=settings.hangup_grace,
    )
    return server, registry, engine


async def serve(settings: Settings, *, ready: asyncio.Event | None = None) -> None:
    """Run until SIGTERM or SIGINT, then drain: no new calls, running calls finish."""
    config = _routing_config(settings)  # a bad routing.yaml stops the engine before it starts
    if settings.api_port:
        # So do bad API tokens (a short one, an unknown role): every setting is checked
        # before a port is opened or a model loaded.
        TokenBook.from_environ()
    resets = _Resets()
    async with contextlib.AsyncExitStack() as stack:
        if not settings.redis_url:
            # Its own redis-server: one engine per folder, or the second refuses now.
            stack.enter_context(
                engine_lock(
                    settings.redis_dir,
                    agi=f"{settings.agi_host}:{settings.agi_port}",
                    api=settings.api_port or "off",
                )
            )
        router = await _routing(settings, config, stack, resets)
        await _serve(settings, router, config, ready, resets)


class _Resets:
    """What the engine does when Redis comes back without its data (a restart without
    persistence, a failover that lost writes): agents again from routing.yaml, their
    phones again from AMI (the router itself puts this engine's callers back)."""

    def __init__(self) -> None:
        self.hooks: list[Callable[[], Awaitable[None]]] = []

    async def run(self) -> None:
        log.warning("routing.reset", then="agents from routing.yaml, phones from AMI")
        for hook in self.hooks:
            try:
                await hook()
            except (RoutingError, AmiError) as exc:
                log.error("routing.rebuild_failed", error=str(exc))  # noqa: TRY400


async def _routing(
    settings: Settings,
    config: RoutingConfig,
    stack: contextlib.AsyncExitStack,
    resets: _Resets,
) -> RedisRouter:
    """Redis routing: the configured server, or a private redis-server the engine runs."""
    url = settings.redis_url
    if not url:
        embedded = EmbeddedRedis(settings.redis_dir)
        url = await embedded.start()
        stack.push_async_callback(embedded.stop)
        log.info("routing.embedded_redis", socket=str(embedded.socket))
    # Transitions Redis could not take wait here and are replayed when it returns.
    outbox = settings.redis_dir.parent / "routing-outbox.jsonl"
    router = RedisRouter.connect(url, outbox=outbox, on_reset=resets.run)
    stack.push_async_callback(router.close)

    async def agents() -> None:
        await router.add_agents(agent_of(a) for a in config.agents)
        for agent in config.agents:
            if agent.log_in and await router.agent_state(agent.id) == "logged_out":
                await router.login(agent.id)
        await router.replace_queues(config.queues)

    resets.hooks.append(agents)
    try:
        await router.start()
        await agents()
    except RoutingError as exc:
        log.error("routing.unavailable", error=str(exc), then="fallbacks")  # noqa: TRY400
    return router


def _routing_config(settings: Settings) -> RoutingConfig:
    if not settings.routing_file.exists():
        log.warning("routing.no_file", file=str(settings.routing_file), agents=0)
    try:
        return load_routing_file(settings.routing_file)
    except FlowError as exc:
        raise ConfigError(f"{settings.routing_file} has problems:\n{exc}") from None


async def _serve(
    settings: Settings,
    router: RedisRouter,
    config: RoutingConfig,
    ready: asyncio.Event | None,
    resets: _Resets,
) -> None:
    server, registry, engine = build(settings, router)
    # routing.yaml's queues become every engine's; the API changes them at run
    # time and the router keeps this mapping current (it is read per call).
    router.queues.update(config.queues)  # pushed to Redis with the agents (_routing)
    engine.queues = router.queues
    engine.spool = str(settings.spool_dir)
    # Prompts a crashed engine made from its calls' data (a PIN read back) go now.
    _speech_prompts(engine, settings).private.sweep()
    async with contextlib.AsyncExitStack() as speech_stack:
        # After the calls: the pooled HTTP client, this engine's per-call folder and lock.
        speech_stack.push_async_callback(engine.aclose)
        await _start_speech(settings, engine, registry, speech_stack)
        await server.start()
        await _serve_started(
            settings, router, server, registry=registry, engine=engine, ready=ready, resets=resets
        )


def _speech_prompts(engine: Engine, settings: Settings) -> SpeechPrompts:
    """The engine's prompts (one synthesizer, one pyttsx3 worker, for the whole engine)."""
    if isinstance(engine.prompts, SpeechPrompts):
        return engine.prompts
    engine.prompts = SpeechPrompts(settings.prompts_dir)
    return engine.prompts


async def _start_speech(
    settings: Settings,
    engine: Engine,
    registry: FlowRegistry,
    stack: contextlib.AsyncExitStack,
) -> None:
    """Vosk and the AudioSocket server; stops the engine when a flow that requires speech
    has no model for one of its languages (the message names the install command)."""
    recognizer = Recognizer(ModelRegistry(ModelStore(settings.models_dir)))
    stack.callback(recognizer.close)
    sockets = None
    if settings.audiosocket_port:
        sockets = AudioSocketServer(settings.audiosocket_host, settings.audiosocket_port)
        try:
            await sockets.start()
        except OSError as exc:
            raise ConfigError(
                f"the AudioSocket server cannot listen on {settings.audiosocket_host}:"
                f"{settings.audiosocket_port} ({exc.strerror}); set IVR_AUDIOSOCKET_PORT to a "
                "free port, or 0 to hear callers through RECORD FILE instead"
            ) from None
        stack.push_async_callback(sockets.close)
    synthesizer = _speech_prompts(engine, settings).synthesizer
    speech = SpeechInput(
        recognizer,
        synthesizer,
        server=sockets,
        advertise=settings.audiosocket_advertise,
        spool=settings.spool_dir,
        languages=speech_languages(settings),
        on_latency=observe_asr,  # the engine's /metrics (ivr_asr_seconds)
    )
    ready: list[str] = []
    allowed = speech_languages(settings)
    for flow in (f for f in map(registry.get, registry.ids) if f is not None):
        for language in sorted(flow_languages(flow)):
            if allowed and language not in allowed:
                if flow.defaults.speech == "required":
                    raise ConfigError(
                        f"flow {flow.id!r} requires speech in {language!r}, which "
                        f"IVR_SPEECH_LANGUAGES ({settings.speech_languages}) leaves out: add "
                        f"it there (or set the flow's defaults.speech: optional)"
                    )
                log.info("speech.language_off", flow=flow.id, language=language)
                continue
            if speech.speaks(language):
                ready.append(language)
            elif flow.defaults.speech == "required":
                raise ConfigError(
                    f"flow {flow.id!r} requires speech in {language!r} and there is no model: "
                    f"install one with  ivr speech models install URL-or-path --language "
                    f"{language}  (or set defaults.speech: optional to take keys only)"
                )
            else:
                log.warning(
                    "speech.keys_only",
                    flow=flow.id,
                    language=language,
                    hint=f"ivr speech models install URL-or-path --language {language}",
                )
    engine.speech = speech
    _start_qa(settings, engine, recognizer.registry, stack)
    # Load the models now, off the loop: the first caller does not wait for them.
    loading = [asyncio.ensure_future(recognizer.registry.get(lang)) for lang in set(ready)]
    stack.callback(lambda: [task.cancel() for task in loading])
    log.info(
        "speech.ready",
        languages=sorted(set(ready)),
        audiosocket=sockets.address if sockets is not None else "off (RECORD FILE)",
    )


#: How often recordings past their queue's retention are deleted.
SWEEP_EVERY = 3600.0


def _start_qa(
    settings: Settings,
    engine: Engine,
    registry: ModelRegistry,
    stack: contextlib.AsyncExitStack,
) -> None:
    """Recording (queues with ``record: true``) and the checks after each recorded call,
    on the engine's loaded models; the retention sweep every hour."""
    transcriber = Transcriber(registry, workers=settings.qa_workers)
    worker = QaWorker(
        settings.recordings_dir,
        router=engine.router,
        transcriber=transcriber,
        rules=settings.qa_rules,
        webhook=settings.qa_webhook,
    )
    engine.recorder = worker
    sweeper = asyncio.ensure_future(worker.sweep_every(SWEEP_EVERY))

    async def stop() -> None:
        sweeper.cancel()
        await worker.drain()
        await asyncio.to_thread(transcriber.close)

    stack.push_async_callback(stop)


async def _serve_started(
    settings: Settings,
    router: RedisRouter,
    server: FastAgiServer,
    *,
    registry: FlowRegistry,
    engine: Engine,
    ready: asyncio.Event | None,
    resets: _Resets,
) -> None:
    prompts = _speech_prompts(engine, settings)

    async def render_prompts() -> None:
        """Every fixed prompt rendered ahead: no caller waits for synthesis."""
        flows = [flow for flow in map(registry.get, registry.ids) if flow is not None]
        try:
            paths = await prompts.synthesizer.build(sorted(prompt_texts(flows)))
        except Exception as exc:  # the engine serves anyway: prompts render when said
            log.warning("prompts.build_failed", error=str(exc))
        else:
            log.info("prompts.ready", prompts=len(paths), flows=len(flows))

    builder = asyncio.ensure_future(render_prompts())
    watcher = asyncio.ensure_future(registry.watch(on_change=render_prompts))
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(builder.cancel)
        supervisors = await _start_ami(settings, router, engine, stack, resets)
        api = await _start_api(settings, router, engine, supervisors)
        await _run_until_stopped(
            settings, server, registry=registry, watcher=watcher, api=api, ready=ready
        )


async def _run_until_stopped(
    settings: Settings,
    server: FastAgiServer,
    *,
    registry: FlowRegistry,
    watcher: asyncio.Future[None],
    api: _ApiServer | None,
    ready: asyncio.Event | None,
) -> None:
    demo_api = await start_demo_api(settings.demo_api_port) if settings.demo_api_port else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    log.info(
        "engine.ready",
        agi=f"{settings.agi_host}:{server.port}",
        flows=registry.ids,
        loop=settings.event_loop,
    )
    if ready is not None:
        ready.set()
    await stop.wait()
    log.info("engine.stopping", drain_timeout=settings.drain_timeout, calls=server.active_calls)
    watcher.cancel()
    if demo_api is not None:
        demo_api.close()
    await server.drain(settings.drain_timeout)
    if api is not None:
        await api.stop()  # after the calls: the API stays useful while they drain
    log.info("engine.stopped", **dataclasses.asdict(server.stats))


class _ApiServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the engine's SIGTERM drains everything."""

    task: asyncio.Task[None] | None = None

    async def stop(self) -> None:
        """Finish the requests in flight (a few seconds at most), then close."""
        self.should_exit = True
        if self.task is not None:
            with contextlib.suppress(TimeoutError, Exception):
                await asyncio.wait_for(self.task, 5.0)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _start_ami(
    settings: Settings,
    router: RedisRouter,
    engine: Engine,
    stack: contextlib.AsyncExitStack,
    resets: _Resets,
) -> Supervisors | None:
    """AMI when configured: phones drive agents' availability, callbacks are placed,
    supervisors can listen in. Asterisk may come up after the engine: it keeps trying."""
    config = AmiConfig.from_env()
    if not config.username:
        log.info(
            "ami.off",
            hint="set IVR_AMI_USER and IVR_AMI_SECRET (or IVR_AMI_SECRET_FILE) to follow "
            "agents' phones, place callbacks and supervise calls",
        )
        return None
    presence = Presence(router)
    ami = AmiClient(config, on_resync=presence.resync)
    presence.attach(ami)

    async def phones_again() -> None:
        """After Redis lost its data: every phone's state again, as after a reconnect."""
        if ami.connected:
            states = await ami.device_states()
            presence.resync(Resync((), states, reconnected=True))

    resets.hooks.append(phones_again)
    engine.answers = AnswerTracker()  # agents on_call from the answer, not Dial's end
    engine.answers.attach(ami)
    worker = CallbackWorker(
        router,
        ami,
        external_dial=settings.external_dial,
        internal_dial=settings.internal_dial,
        allow=engine.transfer_allow,
        ring_timeout=engine.ring_timeout,
        caller_id=settings.callback_caller_id,
    )
    tasks = [
        asyncio.ensure_future(_keep_connecting(ami)),
        asyncio.ensure_future(worker.run()),
    ]
    engine.callbacks = True  # queue nodes may offer their callback key

    async def stop() -> None:
        for task in tasks:
            task.cancel()
        await worker.close()
        await ami.close()
        await presence.close()

    stack.push_async_callback(stop)
    return Supervisors(router, ami)


async def _keep_connecting(ami: AmiClient) -> None:
    """The first connection, retried with a capped backoff (the client reconnects after)."""
    backoff = Backoff(0.5, 30.0)
    while True:
        try:
            await ami.connect()
        except AmiLoginError as exc:
            log.error("ami.login_refused", error=str(exc))  # noqa: TRY400
            backoff.longest()
        except AmiSetupError as exc:
            # Reachable, but Asterisk lacks a module or a right: said once a try,
            # and tried again (an admin may load the module meanwhile).
            backoff.longest()
            log.error("ami.misconfigured", error=str(exc), retry_in=backoff.upcoming)  # noqa: TRY400
        except AmiError as exc:
            log.warning("ami.unreachable", error=str(exc), retry_in=backoff.upcoming)
        else:
            return
        await asyncio.sleep(backoff.delay())


async def _start_api(
    settings: Settings,
    router: RedisRouter,
    engine: Engine,
    supervisors: Supervisors | None = None,
) -> _ApiServer | None:
    """The HTTP API in this process (uvicorn on the engine's loop), or None when off;
    the console's board follows the engine's calls through their flows."""
    if not settings.api_port:
        return None
    tokens = TokenBook.from_environ()
    if not tokens:
        log.warning("api.no_tokens", hint="set IVR_API_TOKENS or IVR_API_TOKENS_FILE")
    app = build_api(router, tokens, supervisors, settings)
    follow_calls(engine, app.state.aggregator)
    config = uvicorn.Config(
        app,
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        log_level="warning",  # the engine logs the API's start itself, in its format
        access_log=False,
        lifespan="on",  # the console's live data starts and stops with it
    )
    api = _ApiServer(config)
    task = api.task = asyncio.ensure_future(api.serve())
    while not api.started and not task.done():  # noqa: ASYNC110 - uvicorn sets a flag only
        await asyncio.sleep(0.01)
    if task.done():
        raise ConfigError(
            f"the HTTP API cannot listen on {settings.api_host}:{settings.api_port}; "
            "set IVR_API_PORT to a free port, or 0 to turn it off"
        )
    log.info("api.listening", address=f"{settings.api_host}:{settings.api_port}")
    log.info("console.ready", url=f"http://{settings.api_host}:{settings.api_port}/console/")
    return api
