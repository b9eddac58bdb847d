"""Quality checks of recorded calls, measured: recognition-dependent rules on labelled audio.

Builds a labelled set with espeak-ng's Korean voice, put through a phone line
(8 kHz, G.711 mu-law, line noise), and runs the real pipeline on it
(``speech.qa``: free-form Vosk with the Korean model, voice activity, rules):

- utterances: sentences that hold one of the target phrases and sentences
  that hold none (some close in sound: 해제 for 해지, 반납 for 반품), each
  said three times: every noise level (none, 20 dB, 10 dB SNR) and every
  rate (130, 160, 190 words a minute), the voice variants of espeak-ng taken
  in turn (every variant the installed espeak-ng has);
- stereo calls: an agent and a caller taking turns on two legs, with gaps of
  dead air and stretches of talking over each other placed on purpose.

Prints precision and recall per rule type (exact, fuzzy at each threshold,
proximity, silence, talk-over), how often a verdict would be unverifiable
and how right the others are at each confidence floor, the jamo error rate
of the transcripts, and the real-time factor per leg. ``--pools`` also
times the legs on a thread pool against a process pool.

    python bench/qa.py            # 15-25 minutes on 2 busy cores
    python bench/qa.py --quick    # a smoke run (a minute or two)
    python bench/qa.py --pools    # also thread vs process pools
    python bench/qa.py --pools-only 3   # only the pools, alternating, 3 rounds
"""

from __future__ import annotations

import argparse
import array
import asyncio
import io
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import structlog  # noqa: E402

structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))

import psutil  # type: ignore[import-untyped]  # noqa: E402
from rapidfuzz.distance import Levenshtein  # noqa: E402

from speech.audio import SAMPLE_RATE, from_pcm, resample, write_wav  # noqa: E402
from speech.qa import Transcriber, Transcript, evaluate, load_pack  # noqa: E402
from speech.qa.phrases import Phrase, Stream, find_near, jamo, normalise  # noqa: E402
from speech.qa.transcript import Word  # noqa: E402
from speech.recognizer import ModelRegistry  # noqa: E402

TARGETS = [
    "해지",
    "감사합니다",
    "예약",
    "반품",
    "번호",
    "안내",
    "위약금",
    "알겠습니다",
    "좋아요",
    "아니요",
]
CARRIERS = [
    "{p}",
    "{p} 입니다",
    "네 {p}",
    "고객님 {p} 도와 드릴까요",
    "{p} 말씀 이신가요",
    "지금 바로 {p} 해 드릴게요",
]
DISTRACTORS = [
    "오늘 날씨가 좋네요",
    "잠시만 기다려 주세요",
    "주소를 말씀해 주세요",
    "카드를 잃어버렸어요",
    "이번 달 청구서가 왔어요",
    "네 맞아요",
    "확인해 보겠습니다",
    "다른 문의 있으신가요",
    "처리 되었습니다",
    "계약 해제 는 어렵습니다",
    "반납 하실 건가요",
    "번화가 에 있어요",
    "예의 를 지켜 주세요",
    "감사원 에서 왔습니다",
    "알았습니다 고객님",
    "아니 그게 아니라",
]
NEAR_PAIRS = [("해지", "위약금"), ("예약", "번호")]
NEAR_WITHIN = 3
NEAR_SENTENCES = [
    "해지 하시면 위약금 이 있어요",
    "위약금 없이 해지 됩니다",
    "예약 번호 알려 주세요",
    "번호 로 예약 하세요",
    "해지 는 오늘 말고 다음 달 에 하시면 위약금",
    "예약 은 내일 오후 세 시 쯤 번호",
    "위약금 안내 입니다",
    "예약 안내 입니다",
]
RATES = [130, 160, 190]
NOISES: list[float | None] = [None, 20.0, 10.0]
THRESHOLDS = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]
FLOORS = [0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
SILENCE_OVER = 3.0
TALK_OVER = 1.0


def variants() -> list[str]:
    """Every voice variant espeak-ng has (the ``!v/`` files)."""
    listing = subprocess.run(
        ["espeak-ng", "--voices=variant"], capture_output=True, text=True, check=True
    ).stdout
    names = [line.split()[-1] for line in listing.splitlines()[1:] if line.strip()]
    return [name.removeprefix("!v/") for name in names]


def synth(text: str, variant: str, rate: int) -> array.array[int]:
    """espeak-ng's Korean voice with a variant, as 8 kHz samples."""
    out = subprocess.run(
        ["espeak-ng", "-v", f"ko+{variant}", "-s", str(rate), "--stdout"],
        input=text.encode(),
        capture_output=True,
        check=True,
    ).stdout
    with wave.open(io.BytesIO(out)) as wav:
        return resample(from_pcm(wav.readframes(wav.getnframes())), wav.getframerate())


def _mulaw(sample: int) -> int:
    """G.711 mu-law encode then decode one sample (what a phone line does to it)."""
    sign = -1 if sample < 0 else 1
    magnitude = min(abs(sample), 32635) + 132
    exponent = max(0, magnitude.bit_length() - 8)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return sign * ((((mantissa << 3) + 0x84) << exponent) - 132)


def line(samples: array.array[int], snr: float | None, seed: int) -> array.array[int]:
    """Add white line noise at ``snr`` dB below the speech's level, then mu-law."""
    out = array.array("h", samples)
    if snr is not None:
        loud = [s for s in samples if abs(s) > 300] or [1]
        level = math.sqrt(sum(s * s for s in loud) / len(loud))
        sigma = level / (10 ** (snr / 20))
        noise = random.Random(seed)
        for i, s in enumerate(out):
            out[i] = max(-32768, min(32767, round(s + noise.gauss(0, sigma))))
    return array.array("h", (_mulaw(s) for s in out))


def extent(samples: array.array[int]) -> tuple[int, int]:
    """First and last sample of actual speech in clean synthesised audio."""
    loud = [i for i, s in enumerate(samples) if abs(s) > 400]
    return (loud[0], loud[-1] + 1) if loud else (0, 0)


# -- utterances -----------------------------------------------------------------------


@dataclass
class Utterance:
    text: str
    variant: str
    rate: int
    noise: float | None
    path: Path
    transcript: Transcript | None = None

    @property
    def reference(self) -> Stream:
        return Stream([Word(w, i, i + 0.5, 1.0) for i, w in enumerate(self.text.split())])

    @property
    def heard(self) -> Stream:
        assert self.transcript is not None
        return Stream(self.transcript.words)

    @property
    def confidence(self) -> float:
        assert self.transcript is not None
        words = self.transcript.words
        return statistics.fmean(w.confidence for w in words) if words else 0.0


def sentences() -> list[str]:
    return [c.format(p=p) for p in TARGETS for c in CARRIERS] + DISTRACTORS + NEAR_SENTENCES


def build_utterances(folder: Path, quick: bool) -> list[Utterance]:
    texts = sentences()
    voices = variants()
    if quick:
        texts = texts[::6]
    out = []
    for i, text in enumerate(texts):
        for j, noise in enumerate(NOISES if not quick else NOISES[:2]):
            rate = RATES[(i + j) % len(RATES)]
            variant = voices[(len(NOISES) * i + j) % len(voices)]
            samples = line(synth(text, variant, rate), noise, seed=i * 10 + j)
            padded = array.array("h", bytes(2 * 2400)) + samples + array.array("h", bytes(2 * 2400))
            path = folder / f"u{i:03d}-{j}.wav"
            write_wav(path, padded)
            out.append(Utterance(text, variant, rate, noise, path))
    return out


async def transcribe_all(transcriber: Transcriber, utterances: Sequence[Utterance]) -> None:
    async def one(u: Utterance) -> None:
        u.transcript = await transcriber.transcribe("ko", mono=u.path)

    await asyncio.gather(*(one(u) for u in utterances))


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def add(self, truth: bool, predicted: bool) -> None:
        if truth and predicted:
            self.tp += 1
        elif predicted:
            self.fp += 1
        elif truth:
            self.fn += 1
        else:
            self.tn += 1

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def f1(self) -> float:
        p, r = self.precision or 0.0, self.recall or 0.0
        return 2 * p * r / (p + r) if p + r else 0.0

    def row(self) -> str:
        def pct(value: float | None) -> str:
            return "   -  " if value is None else f"{value:6.1%}"

        return (
            f"precision {pct(self.precision)}  recall {pct(self.recall)}  F1 {self.f1:5.2f}  "
            f"(tp {self.tp}, fp {self.fp}, fn {self.fn}, tn {self.tn})"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "tn": self.tn,
            "precision": self.precision,
            "recall": self.recall,
            "f1": round(self.f1, 3),
        }


def phrase_figures(utterances: Sequence[Utterance]) -> dict[str, Any]:
    exact = Counts()
    fuzzy = {t: Counts() for t in THRESHOLDS}
    near_exact = Counts()
    near_fuzzy = {t: Counts() for t in THRESHOLDS}
    # (confidence, truth, exact prediction, fuzzy predictions) per utterance and target
    decisions: list[tuple[float, bool, bool, dict[float, bool]]] = []
    for u in utterances:
        ref, hyp = u.reference, u.heard
        for target in TARGETS:
            truth = bool(Phrase(target).find(ref))
            said = bool(Phrase(target).find(hyp))
            exact.add(truth, said)
            loose = {t: bool(Phrase(target, "fuzzy", t).find(hyp)) for t in THRESHOLDS}
            for t, found in loose.items():
                fuzzy[t].add(truth, found)
            decisions.append((u.confidence, truth, said, loose))
        for a, b in NEAR_PAIRS:
            truth = bool(find_near(Phrase(a), Phrase(b), NEAR_WITHIN, ref))
            near_exact.add(truth, bool(find_near(Phrase(a), Phrase(b), NEAR_WITHIN, hyp)))
            for t in THRESHOLDS:
                pa, pb = Phrase(a, "fuzzy", t), Phrase(b, "fuzzy", t)
                near_fuzzy[t].add(truth, bool(find_near(pa, pb, NEAR_WITHIN, hyp)))
    return {
        "exact": exact,
        "fuzzy": fuzzy,
        "near_exact": near_exact,
        "near_fuzzy": near_fuzzy,
        "decisions": decisions,
    }


def floors(
    decisions: list[tuple[float, bool, bool, dict[float, bool]]], threshold: float
) -> list[dict[str, Any]]:
    """At each confidence floor: where the phrase was said, the share of verdicts that become
    unverifiable (a miss not blamed on the agent) and of wrong ones left; where it was not,
    the share of verdicts lost to unverifiable."""
    rows = []
    said = [d for d in decisions if d[1]]
    unsaid = [d for d in decisions if not d[1]]
    for floor in FLOORS:
        kept = [d for d in decisions if d[0] >= floor]
        right = sum(truth == loose[threshold] for _, truth, _, loose in kept)
        missed = [d for d in said if d[0] >= floor and not d[3][threshold]]
        rows.append(
            {
                "floor": floor,
                "verifiable": len(kept) / len(decisions) if decisions else 0.0,
                "right": right / len(kept) if kept else None,
                "said_unverifiable": sum(d[0] < floor for d in said) / max(1, len(said)),
                "said_wrong": len(missed) / max(1, len(said)),
                "unsaid_unverifiable": sum(d[0] < floor for d in unsaid) / max(1, len(unsaid)),
            }
        )
    return rows


def text_false_matches() -> dict[float, int]:
    """Fuzzy matches of the targets in the *text* of the sentences that hold none of them
    (해제 for 해지, 반납 for 반품 ...): the matcher's own confusions, recognition aside."""
    out = {}
    for t in THRESHOLDS:
        out[t] = sum(
            bool(Phrase(target, "fuzzy", t).find(Utterance(text, "", 0, None, Path()).reference))
            for text in DISTRACTORS
            for target in TARGETS
            if not Phrase(target).find(Utterance(text, "", 0, None, Path()).reference)
        )
    return out


def error_rate(utterances: Sequence[Utterance]) -> dict[str, float]:
    """Jamo error rate (edit distance / reference length) overall, per noise and per rate."""

    def rate(group: Sequence[Utterance]) -> float:
        edits = 0
        for u in group:
            heard = u.transcript.text if u.transcript else ""
            edits += int(Levenshtein.distance(jamo(normalise(u.text)), jamo(normalise(heard))))
        return edits / max(1, sum(len(jamo(normalise(u.text))) for u in group))

    out = {"all": rate(utterances)}
    for noise in NOISES:
        group = [u for u in utterances if u.noise == noise]
        if group:
            out[f"noise {'none' if noise is None else f'{noise:g} dB'}"] = rate(group)
    for r in RATES:
        group = [u for u in utterances if u.rate == r]
        if group:
            out[f"rate {r}"] = rate(group)
    return out


# -- calls --------------------------------------------------------------------------

AGENT_LINES = [
    "안녕하세요 고객님",
    "예약 번호 를 말씀해 주세요",
    "잠시만 기다려 주세요",
    "확인해 보겠습니다",
    "해지 하시면 위약금 이 있어요",
    "다른 문의 있으신가요",
    "감사합니다",
]
CALLER_LINES = [
    "네 안녕하세요",
    "예약 을 바꾸고 싶어요",
    "번호 는 일 이 삼 사 예요",
    "네 알겠습니다",
    "아니요 괜찮아요",
    "좋아요",
]


@dataclass
class Call:
    agent: Path
    caller: Path
    duration: float
    speech: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    noise: float | None = None
    transcript: Transcript | None = None

    def truth(self) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        """Silences over SILENCE_OVER and overlaps over TALK_OVER, from the placed speech."""
        union = sorted(self.speech["agent"] + self.speech["caller"])
        merged: list[list[float]] = []
        for a, b in union:
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        gaps = [(merged[i][1], merged[i + 1][0]) for i in range(len(merged) - 1)]
        if merged:
            gaps.insert(0, (0.0, merged[0][0]))
        silences = [(a, b) for a, b in gaps if b - a > SILENCE_OVER]
        overlaps = []
        for a1, b1 in _merged(self.speech["agent"]):
            for a2, b2 in _merged(self.speech["caller"]):
                start, end = max(a1, a2), min(b1, b2)
                if end - start > TALK_OVER:
                    overlaps.append((start, end))
        return silences, overlaps


def _merged(spans: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def build_call(index: int, folder: Path, voices: list[str], noise: float | None) -> Call:
    """Turns with gaps (mostly short, some dead air) and overlaps (some long), on two legs."""
    rng = random.Random(index)
    legs = {"agent": array.array("h"), "caller": array.array("h")}
    speech: dict[str, list[tuple[float, float]]] = {"agent": [], "caller": []}
    voice = {
        "agent": voices[(7 * index) % len(voices)],
        "caller": voices[(7 * index + 3) % len(voices)],
    }
    cursor = 0.5 * SAMPLE_RATE
    turns = 10
    for turn in range(turns):
        who = "agent" if turn % 2 == 0 else "caller"
        lines = AGENT_LINES if who == "agent" else CALLER_LINES
        audio = synth(lines[(turn // 2 + index) % len(lines)], voice[who], rng.choice(RATES))
        first, last = extent(audio)
        audio = audio[first:last]
        kind = rng.random()
        if turn == 0:
            start = cursor
        elif kind < 0.25:  # dead air
            start = cursor + rng.uniform(4.0, 8.0) * SAMPLE_RATE
        elif kind < 0.5:  # talking over the other side
            start = cursor - rng.uniform(1.3, 2.0) * SAMPLE_RATE
        elif kind < 0.6:  # a short overlap, under the rule's limit
            start = cursor - rng.uniform(0.1, 0.5) * SAMPLE_RATE
        else:
            start = cursor + rng.uniform(0.4, 1.5) * SAMPLE_RATE
        start = int(max(start, 0))
        leg = legs[who]
        if len(leg) < start:
            leg.extend(array.array("h", bytes(2 * (start - len(leg)))))
        else:
            start = max(start, len(leg))  # one side never overlaps itself
        leg.extend(audio)
        speech[who].append((start / SAMPLE_RATE, (start + len(audio)) / SAMPLE_RATE))
        cursor = max(cursor, start + len(audio))
    total = int(cursor + 2 * SAMPLE_RATE)
    paths = {}
    for who, leg in legs.items():
        leg.extend(array.array("h", bytes(2 * (total - len(leg)))))
        path = folder / f"call{index}-{who}.wav"
        write_wav(path, line(leg, noise, seed=1000 + index))
        paths[who] = path
    return Call(paths["agent"], paths["caller"], total / SAMPLE_RATE, speech, noise)


def events(predicted: Sequence[tuple[float, float]], true: Sequence[tuple[float, float]]) -> Counts:
    """Events matched when they overlap by half the true event; tp counts matched true events."""

    def overlap(p: tuple[float, float], t: tuple[float, float]) -> float:
        return max(0.0, min(p[1], t[1]) - max(p[0], t[0]))

    counts = Counts()
    counts.tp = sum(any(overlap(p, t) >= 0.5 * (t[1] - t[0]) for p in predicted) for t in true)
    counts.fn = len(true) - counts.tp
    counts.fp = sum(not any(overlap(p, t) >= 0.5 * (t[1] - t[0]) for t in true) for p in predicted)
    return counts


CALL_PACK = f"""\
language: ko
rules:
  - {{id: dead-air, silence: {{over: {SILENCE_OVER}}}}}
  - {{id: talk-over, talk_over: {{over: {TALK_OVER}}}}}
"""


def call_figures(calls: Sequence[Call]) -> dict[str, Counts]:
    pack = load_pack("bench.yaml", CALL_PACK)
    silence, talk = Counts(), Counts()
    for call in calls:
        assert call.transcript is not None
        result = evaluate(call.transcript, pack)
        true_silences, true_overlaps = call.truth()
        found = events([(e.start, e.end) for e in result.rule("dead-air").evidence], true_silences)
        over = events([(e.start, e.end) for e in result.rule("talk-over").evidence], true_overlaps)
        for total, part in ((silence, found), (talk, over)):
            total.tp += part.tp
            total.fp += part.fp
            total.fn += part.fn
    return {"silence": silence, "talk_over": talk}


# -- pools --------------------------------------------------------------------------


async def time_pool(pool: str, calls: Sequence[Call], registry: ModelRegistry) -> dict[str, float]:
    transcriber = Transcriber(registry, workers=2, pool=pool)  # type: ignore[arg-type]
    warm = time.perf_counter()
    first = calls[0]
    await asyncio.gather(
        transcriber.transcribe("ko", agent=first.agent),
        transcriber.transcribe("ko", caller=first.caller),
    )
    warm = time.perf_counter() - warm
    cpu = cpu_seconds()
    began = time.perf_counter()
    await asyncio.gather(
        *(transcriber.transcribe("ko", agent=c.agent, caller=c.caller) for c in calls)
    )
    wall = time.perf_counter() - began
    cpu = cpu_seconds() - cpu
    await asyncio.to_thread(transcriber.close)
    audio = sum(2 * c.duration for c in calls)
    return {
        "warm_up_s": round(warm, 2),
        "wall_s": round(wall, 2),
        "audio_per_wall_s": round(audio / wall, 2),
        "cpu_s": round(cpu, 2),
        "audio_per_cpu_s": round(audio / cpu, 2),
    }


def cpu_seconds() -> float:
    """CPU time of this process and its live children (a process pool's workers): what the
    decoding costs, whatever the other work on the machine does to the wall clock."""
    me = psutil.Process()
    total = 0.0
    for process in (me, *me.children(recursive=True)):
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def pools_only(rounds: int) -> int:
    """Thread and process pools in turn on the same calls; each round and the medians."""
    load = os.getloadavg()
    print(f"# bench/qa.py --pools-only {rounds}: {os.cpu_count()} cores, load {load[0]:.2f}")
    registry = ModelRegistry()
    registry.load("ko")
    with tempfile.TemporaryDirectory(prefix="qa-bench-") as scratch:
        voices = variants()
        calls = [build_call(i, Path(scratch), voices, NOISES[i % len(NOISES)]) for i in range(2)]
        seen: dict[str, list[dict[str, float]]] = {"thread": [], "process": []}
        for round_ in range(rounds):
            for pool in ("thread", "process") if round_ % 2 == 0 else ("process", "thread"):
                figures = asyncio.run(time_pool(pool, calls, registry))
                seen[pool].append(figures)
                print(f"round {round_ + 1} {pool:8s} {figures}", flush=True)
        for pool, rows in seen.items():
            wall = statistics.median(r["audio_per_wall_s"] for r in rows)
            cpu = statistics.median(r["audio_per_cpu_s"] for r in rows)
            print(f"{pool:8s} median audio s per wall s {wall:.2f}, per CPU s {cpu:.2f}")
    print(f"load at the end {os.getloadavg()[0]:.2f}")
    return 0


# -- report -------------------------------------------------------------------------


def quantiles(values: Sequence[float]) -> str:
    ordered = sorted(values)
    if not ordered:
        return "-"
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return f"median {statistics.median(ordered):.3f}, p90 {p90:.3f}, max {ordered[-1]:.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: fewer utterances and calls"
    )
    parser.add_argument("--pools", action="store_true", help="also time thread vs process pools")
    parser.add_argument(
        "--pools-only",
        type=int,
        metavar="ROUNDS",
        help="only time thread vs process pools, alternating, ROUNDS times each (2 calls)",
    )
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args(argv)
    if args.pools_only:
        return pools_only(args.pools_only)
    load = os.getloadavg()
    print(
        f"# bench/qa.py{' --quick' if args.quick else ''}: {os.cpu_count()} cores, "
        f"load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    registry = ModelRegistry()
    registry.load("ko")
    with tempfile.TemporaryDirectory(prefix="qa-bench-") as scratch:
        folder = Path(scratch)
        began = time.perf_counter()
        utterances = build_utterances(folder, args.quick)
        voices = variants()
        count = 2 if args.quick else 6
        calls = [build_call(i, folder, voices, NOISES[i % len(NOISES)]) for i in range(count)]
        used = {u.variant for u in utterances}
        print(
            f"built {len(utterances)} labelled utterances ("
            f"{len(used)} of {len(voices)} voice variants, rates {RATES}, "
            f"noise {NOISES[:2] if args.quick else NOISES}) and "
            f"{len(calls)} stereo calls in {time.perf_counter() - began:.0f} s"
        )
        transcriber = Transcriber(registry, workers=2)
        began = time.perf_counter()
        asyncio.run(transcribe_all(transcriber, utterances))
        print(f"transcribed the utterances in {time.perf_counter() - began:.0f} s")

        async def legs() -> None:
            for c in calls:
                c.transcript = await transcriber.transcribe("ko", agent=c.agent, caller=c.caller)

        began = time.perf_counter()
        asyncio.run(legs())
        print(f"transcribed the calls in {time.perf_counter() - began:.0f} s")
        transcriber.close()

        figures = phrase_figures(utterances)
        best = max(THRESHOLDS, key=lambda t: (round(figures["fuzzy"][t].f1, 3), t))
        print("\n## phrases (per utterance and target phrase)")
        print(f"exact            {figures['exact'].row()}")
        for t in THRESHOLDS:
            print(f"fuzzy  >= {t:.2f}  {figures['fuzzy'][t].row()}")
        print(f"proximity exact  {figures['near_exact'].row()}")
        print(f"proximity fuzzy {best:.2f} {figures['near_fuzzy'][best].row()}")
        print(f"best fuzzy threshold by F1: {best}")

        confusions = text_false_matches()
        print(f"fuzzy matches in the text of the {len(DISTRACTORS)} sentences without a target:")
        print("  " + ", ".join(f"{t:.2f}: {n}" for t, n in confusions.items()))
        print(f"\n## confidence floor (unverifiable below it), fuzzy at {best}")
        rows = floors(figures["decisions"], best)
        for row in rows:
            right = "-" if row["right"] is None else f"{row['right']:.1%}"
            print(
                f"floor {row['floor']:.1f}: verifiable {row['verifiable']:6.1%}, right {right}; "
                f"said: unverifiable {row['said_unverifiable']:6.1%}, "
                f"wrong {row['said_wrong']:6.1%}"
                f"; not said: unverifiable {row['unsaid_unverifiable']:6.1%}"
            )
        print("\n## jamo error rate of the transcripts")
        cer = error_rate(utterances)
        for name, value in cer.items():
            print(f"{name:12s} {value:.1%}")
        call_counts = call_figures(calls)
        print(
            f"\n## stereo calls ({len(calls)}, silence over {SILENCE_OVER:g} s, "
            f"talk-over over {TALK_OVER:g} s)"
        )
        print(f"silence    {call_counts['silence'].row()}")
        print(f"talk-over  {call_counts['talk_over'].row()}")

        utter_rtf = [u.transcript.legs[0].real_time_factor for u in utterances if u.transcript]
        call_rtf = [
            leg.real_time_factor for c in calls if c.transcript for leg in c.transcript.legs
        ]
        print("\n## real-time factor per leg (decode + VAD time / audio time, 2 threads busy)")
        seconds = statistics.fmean(u.transcript.duration for u in utterances if u.transcript)
        print(f"utterances ({seconds:.1f} s each): {quantiles(utter_rtf)}")
        seconds = statistics.fmean(c.duration for c in calls)
        print(f"call legs ({seconds:.0f} s each): {quantiles(call_rtf)}")
        pools: dict[str, Any] = {}
        if args.pools:
            print("\n## pools: every call's two legs at once, 2 workers")
            for pool in ("thread", "process"):
                pools[pool] = asyncio.run(time_pool(pool, calls, registry))
                print(f"{pool:8s} {pools[pool]}")
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "load": load,
                        "utterances": len(utterances),
                        "exact": figures["exact"].as_dict(),
                        "fuzzy": {str(t): c.as_dict() for t, c in figures["fuzzy"].items()},
                        "near_exact": figures["near_exact"].as_dict(),
                        "near_fuzzy": {
                            str(t): c.as_dict() for t, c in figures["near_fuzzy"].items()
                        },
                        "best_threshold": best,
                        "text_false_matches": {str(t): n for t, n in confusions.items()},
                        "floors": rows,
                        "jamo_error_rate": cer,
                        "silence": call_counts["silence"].as_dict(),
                        "talk_over": call_counts["talk_over"].as_dict(),
                        "rtf_utterances": utter_rtf,
                        "rtf_call_legs": call_rtf,
                        "pools": pools,
                        "samples": [
                            {
                                "text": u.text,
                                "heard": u.transcript.text if u.transcript else "",
                                "variant": u.variant,
                                "rate": u.rate,
                                "noise": u.noise,
                            }
                            for u in utterances
                        ],
                    },
                    ensure_ascii=False,
                    indent=1,
                )
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
