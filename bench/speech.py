"""Speech recognition capacity on this machine: Vosk with the Korean model, grammar menus.

Compares, in one run: our streaming recogniser on a thread pool (cffi releases
the GIL during Vosk's C calls) against the same decoding on a process pool
(one model per process), against one decoding thread (what the GIL would
allow), and free-form decoding. Audio is espeak-ng Korean made at start-up.

    python bench/speech.py            # about 2 minutes
    python bench/speech.py --quick    # smoke run

Figures printed:
- real-time factor of one stream (decode time / audio time), grammar and free-form;
- unpaced throughput: streams' worth of real time decoded per wall second,
  threads (1 and 2 workers) vs processes (2 workers), whole utterances;
- paced: N streams fed 20 ms frames in real time, as AudioSocket does; the
  largest N whose results all arrive within 800 ms after the endpoint; the
  time from end of speech to result (p50/p95: end_silence plus decoding) and
  from the endpoint to result; the event loop's longest stall meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
import wave
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import structlog  # noqa: E402

structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))

from speech.audio import SAMPLE_RATE, from_pcm, resample, to_pcm  # noqa: E402
from speech.recognizer import Final, ModelRegistry, Recognizer, SpeechStarted  # noqa: E402

MENU = ["예약", "안내", "메뉴", "반품", "해지", "번호"]
FRAME = 320
END_SILENCE = 0.5  # what the engine's menus use (--end-silence to change)


def say(text: str) -> bytes:
    out = subprocess.run(
        ["espeak-ng", "-v", "ko", "-s", "165", "--stdout"],
        input=text.encode(),
        capture_output=True,
        check=True,
    ).stdout
    with wave.open(io.BytesIO(out)) as wav:
        pcm, rate = wav.readframes(wav.getnframes()), wav.getframerate()
    return to_pcm(resample(from_pcm(pcm), rate))


def utterance_audio(word: str) -> bytes:
    return bytes(2 * SAMPLE_RATE // 2) + say(word) + bytes(2 * SAMPLE_RATE * 3 // 2)


def seconds(pcm: bytes) -> float:
    return len(pcm) / 2 / SAMPLE_RATE


async def decode(recognizer: Recognizer, pcm: bytes, phrases: list[str] | None) -> Any:
    utterance = await recognizer.start("ko", phrases, end_silence=END_SILENCE)
    for offset in range(0, len(pcm), FRAME):
        for event in await utterance.feed(pcm[offset : offset + FRAME]):
            if isinstance(event, Final):
                return event.result
    return await utterance.finish()


async def single_stream_rtf(recognizer: Recognizer, audio: list[bytes]) -> dict[str, float]:
    out = {}
    for label, phrases in (("grammar", MENU), ("free-form", None)):
        start = time.perf_counter()
        speech = 0.0
        for pcm in audio:
            result = await decode(recognizer, pcm, phrases)
            speech += (result.speech_end or 0) - (result.speech_start or 0) + 0.3 + END_SILENCE
        out[label] = (time.perf_counter() - start) / sum(seconds(p) for p in audio)
        out[label + " (decoded audio only)"] = (time.perf_counter() - start) / speech
    return out


async def unpaced(recognizer: Recognizer, audio: list[bytes], streams: int) -> float:
    """Audio seconds decoded per wall second with ``streams`` fed as fast as possible."""
    batch = [audio[i % len(audio)] for i in range(streams)]
    start = time.perf_counter()
    await asyncio.gather(*(decode(recognizer, pcm, MENU) for pcm in batch))
    return sum(seconds(p) for p in batch) / (time.perf_counter() - start)


# -- the process-pool peer: whole utterances, one model per process ---------------

_model: Any = None


def _load() -> None:
    global _model  # noqa: PLW0603
    import vosk

    vosk.SetLogLevel(-1)
    _model = vosk.Model(str(ModelRegistry().path_for("ko")))


def _decode_whole(pcm: bytes, grammar: str) -> str:
    import vosk

    kaldi = vosk.KaldiRecognizer(_model, SAMPLE_RATE, grammar)
    kaldi.SetWords(True)
    for offset in range(0, len(pcm), 1600):
        kaldi.AcceptWaveform(pcm[offset : offset + 1600])
    return str(json.loads(kaldi.FinalResult())["text"])


async def process_peer(audio: list[bytes], streams: int, workers: int) -> float:
    from speech.grammar import build_grammar

    loaded = ModelRegistry().load("ko")
    grammar = build_grammar(MENU, language="ko", knows=loaded.knows).to_json() or ""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_load) as pool:
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(pool, _load) for _ in range(workers)))
        batch = [audio[i % len(audio)] for i in range(streams)]
        start = time.perf_counter()
        await asyncio.gather(
            *(loop.run_in_executor(pool, _decode_whole, pcm, grammar) for pcm in batch)
        )
        return sum(seconds(p) for p in batch) / (time.perf_counter() - start)


async def thread_whole(recognizer: Recognizer, audio: list[bytes], streams: int) -> float:
    from speech.grammar import build_grammar

    loaded = recognizer.registry.load("ko")
    grammar = build_grammar(MENU, language="ko", knows=loaded.knows).to_json() or ""
    global _model  # noqa: PLW0603
    _model = loaded.model
    loop = asyncio.get_running_loop()
    batch = [audio[i % len(audio)] for i in range(streams)]
    start = time.perf_counter()
    await asyncio.gather(
        *(loop.run_in_executor(recognizer.executor, _decode_whole, pcm, grammar) for pcm in batch)
    )
    return sum(seconds(p) for p in batch) / (time.perf_counter() - start)


# -- paced streams ----------------------------------------------------------------


async def paced(recognizer: Recognizer, audio: list[bytes], streams: int) -> dict[str, Any]:
    lags: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append(time.perf_counter() - before - 0.005)

    after_speech: list[float] = []
    after_endpoint: list[float] = []
    barge: list[float] = []
    correct = 0

    async def stream(index: int) -> None:
        nonlocal correct
        pcm = audio[index % len(audio)]
        await asyncio.sleep(index * 0.02 / max(1, streams) * 10)  # stagger the starts
        utterance = await recognizer.start("ko", MENU, end_silence=END_SILENCE)
        start = time.perf_counter()
        fed_at: dict[int, float] = {}
        for i, offset in enumerate(range(0, len(pcm), FRAME)):
            delay = start + i * 0.02 - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            fed_at[offset // 2 + FRAME // 2] = time.perf_counter()
            for event in await utterance.feed(pcm[offset : offset + FRAME]):
                now = time.perf_counter()
                if isinstance(event, SpeechStarted):
                    barge.append(now - start - event.at)
                if isinstance(event, Final):
                    result = event.result
                    end_sample = round((result.speech_end or 0) * SAMPLE_RATE)
                    speech_end_at = min(v for k, v in fed_at.items() if k >= end_sample)
                    after_speech.append(now - speech_end_at)
                    after_endpoint.append(now - fed_at[offset // 2 + FRAME // 2])
                    correct += result.phrase is not None
                    return

    tick = asyncio.create_task(ticker())
    await asyncio.gather(*(stream(i) for i in range(streams)))
    stop.set()
    await tick

    def pct(values: list[float], q: float) -> float:
        return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]

    return {
        "streams": streams,
        "matched": f"{correct}/{streams}",
        "end of speech -> result p50 ms": 1000 * pct(after_speech, 50),
        "end of speech -> result p95 ms": 1000 * pct(after_speech, 95),
        "endpoint -> result p50 ms": 1000 * pct(after_endpoint, 50),
        "endpoint -> result p95 ms": 1000 * pct(after_endpoint, 95),
        "onset -> speech_started max ms": 1000 * max(barge),
        "event loop max stall ms": 1000 * max(lags),
    }


async def main(quick: bool) -> None:
    words = MENU
    audio = [utterance_audio(w) for w in words]
    print(f"machine: {os.cpu_count()} cores; audio per utterance ~{seconds(audio[0]):.1f} s")
    registry = ModelRegistry()
    registry.load("ko")
    two = Recognizer(registry, workers=2)
    one = Recognizer(registry, workers=1)

    print("\n== one stream, real-time factor (lower is better)")
    for label, value in (await single_stream_rtf(two, audio[:3])).items():
        print(f"  {label:38} {value:.3f}")

    print("\n== unpaced throughput: real-time streams decoded per wall second")
    n = 12 if quick else 48
    # Best of two runs each. Streaming decodes from 300 ms before speech starts;
    # whole-utterance decoding (the peers) also decodes the silence around it.
    rows = [
        ("ours, streaming, 2 threads", max([await unpaced(two, audio, n) for _ in "ab"])),
        ("ours, streaming, 1 thread", max([await unpaced(one, audio, n) for _ in "ab"])),
        ("whole utterance, 2 threads", max([await thread_whole(two, audio, n) for _ in "ab"])),
        ("whole utterance, 1 thread", max([await thread_whole(one, audio, n) for _ in "ab"])),
        ("whole utterance, 2 processes", await process_peer(audio, n, 2)),
    ]
    for label, value in rows:
        print(f"  {label:38} {value:6.1f} x real time  ({value / 2:.1f} per core)")

    print("\n== paced streams (20 ms frames in real time, 2 decoding threads)")
    counts = [4, 16] if quick else [8, 16, 32, 48, 64]
    for count in counts:
        row = await paced(two, audio, count)
        print(
            "  "
            + ", ".join(
                f"{k}: {v:.0f}" if isinstance(v, float) else f"{k}: {v}" for k, v in row.items()
            )
        )
    two.close()
    one.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--end-silence", type=float, default=END_SILENCE, help="seconds of silence ending speech"
    )
    options = parser.parse_args()
    END_SILENCE = options.end_silence
    asyncio.run(main(options.quick))
