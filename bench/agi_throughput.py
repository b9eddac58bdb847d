"""FastAGI throughput: our server against panoramisk's ``fast_agi``, same run, same calls.

Each engine runs in its own process; this process plays Asterisk with the
project's emulator (``ivr.testing``), the same emulator for both, so both
engines get the same replies to the same commands. Every call runs the same
command mix through the same handler logic:

    ANSWER, GET FULL VARIABLE ${CALLERID(num)}, SET VARIABLE, STREAM FILE
    (interruptible), GET DATA (the caller types 4 digits), SAY DIGITS,
    EXEC Dial (agent answers, 'g'), GET VARIABLE DIALSTATUS, VERBOSE, HANGUP

Phases:
  * concurrency (each engine in turn): N calls ramped in at R calls/s in real
    time (prompts, digit waits and the agent call take their real length), so
    they overlap; how many completed intact, the peak concurrent calls and the
    engine's peak RSS per 1,000 calls.
  * throughput (the two engines interleaved): W workers place calls back to
    back with waits skipped, in rounds of T seconds, ours and the peer's in
    turn (the order swapped every round, so both see the same machine load).
    The engine's own CPU time (user + system, read from /proc for that
    process alone) over exactly the calls it completed gives *calls per
    engine CPU-second*; the median and the spread over the rounds are
    reported, and the ratio is taken round by round. No instrumentation runs
    in this phase. Every engine process runs with glibc's malloc in the state
    a long-running process settles into (``--malloc``, STEADY_MALLOC below).
  * instructions: each engine alone under valgrind's callgrind (``apt install
    valgrind``; skipped without it), 300 calls after 20 to warm up: the
    instructions the engine process executed per call, user space. Unlike CPU
    seconds it does not move with the machine's load (two runs agree to about
    0.3 %), so it shows changes of a few per cent that the rounds above cannot.
  * overhead: the same calls with a meter in each engine, from the moment a
    reply's bytes are read to the moment the next command is written.
  * early close: one peer sends half an environment block and closes; then
    50 normal calls get 5 s to complete.

    python bench/agi_throughput.py                     # full run (about 3 minutes)
    python bench/agi_throughput.py --quick             # smaller, for a smoke test
    python bench/agi_throughput.py --phases throughput # the CPU-second figure alone
    python bench/agi_throughput.py --loop uvloop       # both engines on uvloop
    python bench/agi_throughput.py --phases throughput --floor  # with the floor
    python bench/agi_throughput.py --malloc default    # glibc's start-up malloc state
    python bench/agi_throughput.py --ours-from /tmp/old  # our engine from another checkout

With ``--floor`` a third process takes part in the throughput rounds: no
engine at all, a bare protocol that answers each reply with the next of the
ten commands as canned bytes (no parsing, no checks, no task). It is what any
engine on this event loop pays for the sockets and the loop alone: the
ceiling of calls per engine CPU-second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
#: An engine process of ``--ours-from DIR`` imports ``ivr`` from that checkout
#: (before/after comparisons with the same generator, peer and command).
sys.path.insert(0, os.environ.get("BENCH_IVR_TREE") or str(ROOT))

from ivr.testing import AsteriskEmulator, DialOutcome, Press  # noqa: E402

EXPECTED_COMMANDS = 10
DIAL = {"PJSIP/1001": DialOutcome("ANSWER", ring=1.0, talk=2.0)}
PHASES = ("concurrency", "throughput", "instructions", "overhead", "early-close")
IMPLS = ("ours", "panoramisk")
#: The ten commands as ours sends them, for the floor.
CANNED = (
    b"ANSWER\n",
    b"GET FULL VARIABLE ${CALLERID(num)}\n",
    b"SET VARIABLE CALLER 5551234\n",
    b'STREAM FILE beep "0123456789"\n',
    b"GET DATA beep 3000 4\n",
    b'SAY DIGITS 1234 ""\n',
    b"EXEC Dial PJSIP/1001,20,g\n",
    b"GET VARIABLE DIALSTATUS\n",
    b'VERBOSE "call ended ANSWER" 3\n',
    b"HANGUP\n",
)


# --------------------------------------------------------------------- engines


def _nothing() -> None:
    pass


class Meter:
    """Engine-side time between reading a reply and writing the next command.

    Off unless switched on (SIGUSR1), so that the throughput phase runs
    without it; SIGUSR2 prints the figures and switches it off.
    """

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.on = False
        self.install: Callable[[], None] = _nothing
        self.uninstall: Callable[[], None] = _nothing

    def start(self) -> None:
        self.samples.clear()
        self.on = True
        self.install()

    def stop(self) -> None:
        self.on = False
        self.uninstall()

    def wrap(self, read: Any, write: Any) -> tuple[Any, Any]:
        last = [0.0]

        async def timed_read(*args: Any) -> Any:
            data = await read(*args)
            last[0] = time.perf_counter()
            return data

        def timed_write(data: bytes) -> None:
            if last[0]:
                self.samples.append(time.perf_counter() - last[0])
                last[0] = 0.0
            write(data)

        return timed_read, timed_write


async def run_ours(port: int, meter: Meter) -> None:
    from ivr import log
    from ivr.agi.channel import Channel
    from ivr.agi.connection import AgiConnection
    from ivr.agi.server import FastAgiServer

    log.configure(json=True, level="warning")

    # The channel reads and writes through read_now/write_now (no coroutine each);
    # an older checkout (--ours-from) through the coroutines read/write.
    fast = hasattr(AgiConnection, "read_now")
    read_name, write_name = ("read_now", "write_now") if fast else ("read", "write")
    original_read = getattr(AgiConnection, read_name)
    original_write = getattr(AgiConnection, write_name)

    def mark(connection: AgiConnection) -> None:
        connection._bench_read = time.perf_counter()  # type: ignore[attr-defined]

    def lap(connection: AgiConnection) -> None:
        read_at = getattr(connection, "_bench_read", 0.0)
        if read_at:
            meter.samples.append(time.perf_counter() - read_at)
            connection._bench_read = 0.0  # type: ignore[attr-defined]

    def read_now(self: AgiConnection) -> Any:
        data = original_read(self)
        if isinstance(data, bytes):
            mark(self)
        return data

    def write_now(self: AgiConnection, data: bytes) -> Any:
        lap(self)
        return original_write(self, data)

    async def read(self: AgiConnection) -> bytes:
        data: bytes = await original_read(self)
        mark(self)
        return data

    async def write(self: AgiConnection, data: bytes) -> None:
        lap(self)
        await original_write(self, data)

    def install() -> None:
        setattr(AgiConnection, read_name, read_now if fast else read)
        setattr(AgiConnection, write_name, write_now if fast else write)

    def uninstall() -> None:
        setattr(AgiConnection, read_name, original_read)
        setattr(AgiConnection, write_name, original_write)

    meter.install, meter.uninstall = install, uninstall

    async def handler(ch: Channel) -> None:
        await ch.answer()
        number = await ch.get_full_variable("${CALLERID(num)}")
        await ch.set_variable("CALLER", number or "")
        await ch.stream_file("beep", "0123456789")
        entry = await ch.get_data("beep", 3000, 4)
        await ch.say_digits(entry.digits or "0")
        await ch.exec("Dial", "PJSIP/1001", "20", "g")
        status = await ch.get_variable("DIALSTATUS")
        await ch.verbose(f"call ended {status}", 3)
        await ch.hangup()

    server = FastAgiServer(default=handler, port=port, max_calls=10000, command_timeout=60)
    await server.start()
    await serve_until_term(meter, lambda: server.drain(5))


async def run_panoramisk(port: int, meter: Meter) -> None:
    from panoramisk import fast_agi

    async def handler(request: Any) -> None:
        if meter.on:
            read, write = meter.wrap(request.reader.readline, request.writer.write)
            request.reader.readline = read
            request.writer.write = write
        send = request.send_command
        await send("ANSWER")
        reply = await send("GET FULL VARIABLE ${CALLERID(num)}")
        number = reply.get("result", ("", ""))[1]
        await send(f'SET VARIABLE CALLER "{number}"')
        await send('STREAM FILE beep "0123456789"')
        reply = await send("GET DATA beep 3000 4")
        digits = reply.get("result", ("", ""))[0] or "0"
        await send(f'SAY DIGITS {digits} ""')
        await send("EXEC Dial PJSIP/1001,20,g")
        reply = await send("GET VARIABLE DIALSTATUS")
        status = reply.get("result", ("", ""))[1]
        await send(f'VERBOSE "call ended {status}" 3')
        await send("HANGUP")

    app = fast_agi.Application(loop=asyncio.get_running_loop())
    app.add_route("bench", handler)
    server = await asyncio.start_server(app.handler, "127.0.0.1", port, backlog=4096)

    async def close() -> None:
        server.close()

    await serve_until_term(meter, close)


async def run_floor(port: int, meter: Meter) -> None:
    """No engine: each reply is answered by the next canned command (see the docstring)."""

    class Floor(asyncio.Protocol):
        def __init__(self) -> None:
            self.env = b""
            self.step = -1
            self.transport: Any = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport
            if hasattr(transport, "max_size"):  # small reads, as the engine's (heap, no mmap)
                transport.max_size = 16 * 1024

        def data_received(self, data: bytes) -> None:
            if self.step < 0:
                self.env += data
                if b"\n\n" not in self.env:
                    return
            elif data.startswith(b"HANGUP"):
                return
            self.step += 1
            if self.step < len(CANNED):
                self.transport.write(CANNED[self.step])
            else:
                self.transport.close()

    server = await asyncio.get_running_loop().create_server(Floor, "127.0.0.1", port, backlog=4096)

    async def close() -> None:
        server.close()

    await serve_until_term(meter, close)


async def serve_until_term(meter: Meter, close: Any) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, meter.start)
    loop.add_signal_handler(signal.SIGUSR2, lambda: print_stats(meter))
    print("READY", flush=True)
    await stop.wait()
    await close()


def print_stats(meter: Meter) -> None:
    meter.stop()
    samples = sorted(meter.samples)
    out: dict[str, float] = {"n": len(samples)}
    if samples:
        out |= {
            "p50_ms": samples[len(samples) // 2] * 1000,
            "p99_ms": samples[int(len(samples) * 0.99)] * 1000,
            "mean_ms": statistics.fmean(samples) * 1000,
        }
    print("STATS " + json.dumps(out), flush=True)


# ------------------------------------------------------------------ generator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: glibc's malloc in the state a long-running process settles into. By default
#: its mmap threshold starts at 128 KiB and rises only once some large block is
#: freed, at a moment that differs from run to run. Until then asyncio's
#: ``recv(262144)`` for a plain protocol costs mmap, mremap and munmap (or two
#: brk) and page faults on every read: panoramisk's per-call CPU then swung by
#: a third between runs of the same code. Fixed thresholds (what glibc's own
#: adjustment reaches) make both engines read from the heap, every run.
STEADY_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(4 << 20), "MALLOC_TRIM_THRESHOLD_": str(8 << 20)}


class Engine:
    def __init__(self, impl: str, loop: str, malloc: str = "steady", tree: str = "") -> None:
        self.impl = impl
        self.port = free_port()
        env = os.environ | (STEADY_MALLOC if malloc == "steady" else {})
        env |= {"BENCH_IVR_TREE": tree} if tree else {}
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--engine", impl, "--port", str(self.port), "--loop", loop],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        while (line := self.proc.stdout.readline()) and line.strip() != "READY":
            pass
        if not line:
            raise RuntimeError(f"the {impl} engine did not start")
        self.ps = psutil.Process(self.proc.pid)
        self.base_rss = self.ps.memory_info().rss

    def rss(self) -> int:
        return int(self.ps.memory_info().rss)

    def cpu(self) -> float:
        """User + system CPU seconds of the engine process alone."""
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    def start_meter(self) -> None:
        self.proc.send_signal(signal.SIGUSR1)

    def stats(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        self.proc.send_signal(signal.SIGUSR2)
        while line := self.proc.stdout.readline():
            if line.startswith("STATS "):
                return dict(json.loads(line[6:]))
        return {}

    def stop(self) -> bool:
        """Stop the engine; False when it had to be killed (its loop was frozen)."""
        if self.proc.poll() is not None:
            return False
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            return False
        return True


def call_ok(result: Any) -> bool:
    return len(result.exchanges) == EXPECTED_COMMANDS and result.commands[-1] == "HANGUP"


async def concurrency(engine: Engine, calls: int, rate: float) -> dict[str, Any]:
    emulator = AsteriskEmulator(port=engine.port, speed=1.0, dial=DIAL)
    emulator.connect_timeout = 30
    active = 0
    peak = 0
    peak_rss = engine.rss()
    done = asyncio.Event()

    async def one() -> bool:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        try:
            result = await emulator.call(
                "bench", callerid="5551234", actions=[Press("1234", on="GET DATA", after=0.5)]
            )
            return call_ok(result)
        except Exception:
            return False
        finally:
            active -= 1

    async def sample() -> None:
        nonlocal peak_rss
        while not done.is_set():
            peak_rss = max(peak_rss, engine.rss())
            await asyncio.sleep(0.1)

    sampler = asyncio.ensure_future(sample())
    tasks = []
    started = time.perf_counter()
    for i in range(calls):
        tasks.append(asyncio.ensure_future(one()))
        delay = started + (i + 1) / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
    ok = await asyncio.gather(*tasks)
    done.set()
    await sampler
    return {
        "calls": calls,
        "completed": sum(ok),
        "dropped": calls - sum(ok),
        "peak_concurrent": peak,
        "rss_per_1000_mb": (peak_rss - engine.base_rss) / 2**20 * 1000 / max(peak, 1),
        "seconds": time.perf_counter() - started,
    }


async def throughput(engine: Engine, workers: int, seconds: float) -> dict[str, Any]:
    """Calls back to back for ``seconds``; the engine's CPU over exactly those calls."""
    emulator = AsteriskEmulator(port=engine.port, dial=DIAL)
    counts = {"calls": 0, "bad": 0, "commands": 0}
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            result = await emulator.call(
                "bench", callerid="5551234", actions=[Press("1234", on="GET DATA", after=0.5)]
            )
            counts["calls"] += 1
            counts["commands"] += len(result.exchanges)
            counts["bad"] += not call_ok(result)

    cpu_before = engine.cpu()
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    elapsed = time.perf_counter() - started
    # Every call counted was completed and closed by now, so the CPU read
    # after the last one covers all their work and nothing else.
    cpu = engine.cpu() - cpu_before
    return {
        "calls": counts["calls"],
        "calls_per_s": counts["calls"] / elapsed,
        "commands_per_s": counts["commands"] / elapsed,
        "bad_calls": counts["bad"],
        "engine_cpu_s": cpu,
        "calls_per_cpu_s": counts["calls"] / cpu if cpu else float("nan"),
    }


async def interleaved(
    engines: dict[str, Engine], rounds: int, workers: int, seconds: float
) -> dict[str, dict[str, Any]]:
    """Throughput rounds, ours and the peer in turn (order swapped each round)."""
    for engine in engines.values():  # warm both up (code paths, allocator, caches)
        await throughput(engine, workers, min(1.0, seconds))
    runs: dict[str, list[dict[str, Any]]] = {impl: [] for impl in engines}
    for index in range(rounds):
        order = list(engines) if index % 2 == 0 else list(reversed(engines))
        for impl in order:
            runs[impl].append(await throughput(engines[impl], workers, seconds))
        line = {impl: round(runs[impl][-1]["calls_per_cpu_s"]) for impl in engines}
        print(f"  round {index + 1}: calls per engine CPU-second {line}", file=sys.stderr)
    out: dict[str, dict[str, Any]] = {}
    for impl, rows in runs.items():
        per_cpu = [row["calls_per_cpu_s"] for row in rows]
        out[impl] = {
            "calls_per_s": statistics.median(row["calls_per_s"] for row in rows),
            "commands_per_s": statistics.median(row["commands_per_s"] for row in rows),
            "bad_calls": sum(row["bad_calls"] for row in rows),
            "engine_cpu_s": sum(row["engine_cpu_s"] for row in rows),
            "calls_per_cpu_s": statistics.median(per_cpu),
            "calls_per_cpu_s_min": min(per_cpu),
            "calls_per_cpu_s_max": max(per_cpu),
            "rounds": per_cpu,
        }
    if "ours" in engines and "panoramisk" in engines:
        ours, peer = (runs[impl] for impl in IMPLS)
        ratios = [
            a["calls_per_cpu_s"] / b["calls_per_cpu_s"] for a, b in zip(ours, peer, strict=True)
        ]
        out["ours"] |= {
            "ratio_per_cpu": statistics.median(ratios),
            "ratio_min": min(ratios),
            "ratio_max": max(ratios),
        }
    return out


def _start_under_callgrind(impl: str, args: argparse.Namespace, out: Path) -> tuple[Any, int]:
    port = free_port()
    env = os.environ | (STEADY_MALLOC if args.malloc == "steady" else {})
    env |= {"BENCH_IVR_TREE": args.ours_from} if impl == "ours" and args.ours_from else {}
    proc = subprocess.Popen(
        [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={out}",
            *(sys.executable, __file__, "--engine", impl, "--port", str(port)),
            *("--loop", args.loop),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    while (line := proc.stdout.readline()) and line.strip() != "READY":
        pass
    return proc, port


async def _calls_in_turn(port: int, count: int, workers: int = 5) -> int:
    emulator = AsteriskEmulator(port=port, dial=DIAL)
    left = [count]

    async def worker() -> int:
        done = 0
        while left[0] > 0:
            left[0] -= 1
            result = await emulator.call(
                "bench", callerid="5551234", actions=[Press("1234", on="GET DATA", after=0.5)]
            )
            done += call_ok(result)
        return done

    return sum(await asyncio.gather(*(worker() for _ in range(workers))))


def _callgrind_control(option: str, value: str, pid: int) -> None:
    subprocess.run(
        ["callgrind_control", option, *([value] if value else []), str(pid)],
        check=True,
        capture_output=True,
    )


def _callgrind_total(folder: Path, impl: str) -> int:
    """The instructions in the dumps of ``impl`` (its ``totals:`` lines)."""
    total = 0
    for path in folder.glob(f"{impl}.out*"):
        for line in path.read_text().splitlines():
            if line.startswith(("totals:", "summary:")):
                total += int(line.split()[1])
                break
    return total


async def instructions(args: argparse.Namespace, calls: int = 300) -> dict[str, float]:
    """Instructions per call of each engine under callgrind (see the docstring)."""
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("instructions: skipped (no valgrind)", file=sys.stderr, flush=True)
        return {}
    folder = Path(tempfile.mkdtemp(prefix="agi-callgrind-"))
    out: dict[str, float] = {}
    for impl in IMPLS:
        print(f"instructions: {impl} under callgrind ...", file=sys.stderr, flush=True)
        dump = folder / f"{impl}.out"
        proc, port = _start_under_callgrind(impl, args, dump)
        try:
            await _calls_in_turn(port, 20)
            await asyncio.to_thread(_callgrind_control, "-i", "on", proc.pid)
            done = await _calls_in_turn(port, calls)
            await asyncio.to_thread(_callgrind_control, "-d", "", proc.pid)
            total = await asyncio.to_thread(_callgrind_total, folder, impl)
            out[impl] = total / done if done == calls else float("nan")
        finally:
            proc.terminate()
            proc.wait(timeout=120)
    shutil.rmtree(folder, ignore_errors=True)
    return out


async def overhead(engine: Engine, workers: int, seconds: float) -> dict[str, Any]:
    engine.start_meter()
    await asyncio.sleep(0.1)  # the signal is handled between two turns of the loop
    await throughput(engine, workers, seconds)
    return {f"overhead_{k}": v for k, v in engine.stats().items()}


async def early_close(engine: Engine, calls: int = 50, window: float = 5.0) -> dict[str, Any]:
    """One peer closes half-way through its environment block; do other calls still work?"""
    _, writer = await asyncio.open_connection("127.0.0.1", engine.port)
    writer.write(b"agi_network: yes\nagi_network_script: bench\nagi_chan")
    await writer.drain()
    writer.close()
    await asyncio.sleep(0.2)
    emulator = AsteriskEmulator(port=engine.port, dial=DIAL)
    emulator.connect_timeout = window
    press = [Press("1234", on="GET DATA", after=0.5)]
    tasks = [asyncio.ensure_future(emulator.call("bench", actions=press)) for _ in range(calls)]
    done, pending = await asyncio.wait(tasks, timeout=window)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    ok = sum(1 for t in done if not t.exception() and call_ok(t.result()))
    return {"after_early_close_completed": ok, "after_early_close_of": calls}


def report(rows: dict[str, dict[str, Any]], args: argparse.Namespace, load: list[float]) -> None:
    ours, peer = rows["ours"], rows["panoramisk"]
    print(
        f"\nmachine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, loop {args.loop}, "
        f"malloc {args.malloc}, load average {load[0]:.1f} at the start, {load[1]:.1f} at the end"
    )
    fields = [
        ("concurrent calls completed", "completed", "{:.0f}"),
        ("calls dropped", "dropped", "{:.0f}"),
        ("peak concurrent calls", "peak_concurrent", "{:.0f}"),
        ("peak RSS per 1,000 calls (MB)", "rss_per_1000_mb", "{:.1f}"),
        ("calls/s (waits skipped), median", "calls_per_s", "{:.0f}"),
        ("commands/s, median", "commands_per_s", "{:.0f}"),
        ("calls per engine CPU-second, median", "calls_per_cpu_s", "{:.0f}"),
        ("  lowest round", "calls_per_cpu_s_min", "{:.0f}"),
        ("  highest round", "calls_per_cpu_s_max", "{:.0f}"),
        ("calls that went wrong (throughput)", "bad_calls", "{:.0f}"),
        ("instructions per call (callgrind)", "instructions_per_call", "{:,.0f}"),
        ("engine overhead p50 per command (ms)", "overhead_p50_ms", "{:.4f}"),
        ("engine overhead p99 per command (ms)", "overhead_p99_ms", "{:.4f}"),
        ("calls done after a peer closed early", "after_early_close_completed", "{:.0f}"),
        ("engine stopped cleanly on SIGTERM", "clean_exit", "{:.0f}"),
    ]
    print(f"{'':40} {'ours':>12} {'panoramisk':>12} {'ours/peer':>10}")
    for label, key, fmt in fields:
        if key not in ours and key not in peer:
            continue
        a, b = ours.get(key, float("nan")), peer.get(key, float("nan"))
        ratio = a / b if b else float("nan")
        print(f"{label:40} {fmt.format(a):>12} {fmt.format(b):>12} {ratio:>10.2f}")
    if "ratio_per_cpu" in ours:
        print(
            f"ours/peer per engine CPU-second, round by round: median {ours['ratio_per_cpu']:.2f}"
            f" (lowest {ours['ratio_min']:.2f}, highest {ours['ratio_max']:.2f},"
            f" {args.rounds} rounds of {args.seconds:g} s each)"
        )
    if "floor" in rows:
        floor = rows["floor"]["calls_per_cpu_s"]
        print(
            f"floor (no engine, canned commands): {floor:.0f} calls per CPU-second, median;"
            f" ours {ours['calls_per_cpu_s'] / floor:.2f} of it,"
            f" panoramisk {peer['calls_per_cpu_s'] / floor:.2f}"
        )


async def main_async(args: argparse.Namespace) -> None:
    phases = set(args.phases)
    load = [os.getloadavg()[0]]
    engines = {
        impl: Engine(impl, args.loop, args.malloc, args.ours_from if impl == "ours" else "")
        for impl in IMPLS
    }
    floor = Engine("floor", args.loop, args.malloc) if args.floor else None
    rows: dict[str, dict[str, Any]] = {impl: {"impl": impl} for impl in IMPLS}
    try:
        if "concurrency" in phases:
            for impl, engine in engines.items():
                print(f"concurrency: {impl} ...", file=sys.stderr, flush=True)
                rows[impl] |= await concurrency(engine, args.calls, args.rate)
        if "throughput" in phases:
            print("throughput, interleaved:", file=sys.stderr, flush=True)
            rounds = engines | ({"floor": floor} if floor is not None else {})
            result = await interleaved(rounds, args.rounds, args.workers, args.seconds)
            for impl, row in result.items():
                rows.setdefault(impl, {"impl": impl})
                rows[impl] |= row
        if "instructions" in phases:
            for impl, per_call in (await instructions(args)).items():
                rows[impl]["instructions_per_call"] = per_call
        if "overhead" in phases:
            for impl, engine in engines.items():
                print(f"overhead: {impl} ...", file=sys.stderr, flush=True)
                rows[impl] |= await overhead(engine, args.workers, min(args.seconds, 5.0))
        if "early-close" in phases:
            # Last: it freezes panoramisk's loop for good.
            for impl, engine in engines.items():
                print(f"early close: {impl} ...", file=sys.stderr, flush=True)
                rows[impl] |= await early_close(engine)
    finally:
        for impl, engine in engines.items():
            rows[impl]["clean_exit"] = engine.stop()
        if floor is not None:
            floor.stop()
    load.append(os.getloadavg()[0])
    for row in rows.values():
        print(json.dumps(row), file=sys.stderr, flush=True)
    report(rows, args, load)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=[*IMPLS, "floor"], help=argparse.SUPPRESS)
    parser.add_argument(
        "--floor", action="store_true", help="add the floor (no engine) to the throughput rounds"
    )
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, default=2000, help="concurrent-phase calls")
    parser.add_argument("--rate", type=float, default=400.0, help="new calls per second")
    parser.add_argument("--workers", type=int, default=50, help="throughput-phase workers")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of a throughput round")
    parser.add_argument("--rounds", type=int, default=6, help="throughput rounds per engine")
    parser.add_argument(
        "--phases",
        nargs="+",
        choices=PHASES,
        default=list(PHASES),
        help="phases to run (default: all)",
    )
    parser.add_argument("--quick", action="store_true", help="200 calls, 3 rounds of 3 s")
    parser.add_argument(
        "--loop",
        choices=["asyncio", "uvloop"],
        default="asyncio",
        help="event loop of both engines (default: asyncio's own)",
    )
    parser.add_argument(
        "--ours-from",
        default="",
        metavar="DIR",
        help="run our engine from another checkout (e.g. a git worktree of an older commit)",
    )
    parser.add_argument(
        "--malloc",
        choices=["steady", "default"],
        default="steady",
        help="glibc malloc thresholds of the engines: fixed as a long-running process has"
        " them (default), or glibc's start-up state (see STEADY_MALLOC)",
    )
    args = parser.parse_args()
    if args.ours_from and not (Path(args.ours_from) / "ivr" / "agi").is_dir():
        parser.error(f"--ours-from {args.ours_from}: no ivr/agi there")
    if args.engine:
        meter = Meter()
        run = {"ours": run_ours, "panoramisk": run_panoramisk, "floor": run_floor}[args.engine]
        if os.environ.get("BENCH_PROFILE"):  # where an engine spends its time
            import cProfile

            cProfile.runctx(
                "asyncio.run(run(args.port, meter))",
                globals(),
                {"run": run, "args": args, "meter": meter},
                f"{os.environ['BENCH_PROFILE']}.{args.engine}",
            )
            return
        if args.loop == "uvloop":
            import uvloop

            uvloop.run(run(args.port, meter))
        else:
            asyncio.run(run(args.port, meter))
        return
    if args.quick:
        args.calls, args.seconds, args.rounds = 200, 3.0, 3
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
