"""Rules applied to hand-built transcripts: met, violated, unverifiable, groups and the score."""

from __future__ import annotations

from speech.qa import CallResult, RuleResult, Transcript, evaluate, load_pack
from speech.qa.timing import syllables
from speech.qa.transcript import Leg, Span, Speaker, Word


def said(
    speaker: Speaker, start: float, text: str, conf: float = 0.9, step: float = 0.4
) -> list[Word]:
    """Words of ``text`` said one after another from ``start``, ``step`` seconds each."""
    return [
        Word(w, round(start + i * step, 3), round(start + (i + 1) * step, 3), conf, speaker)
        for i, w in enumerate(text.split())
    ]


def call(*words: list[Word], duration: float = 60.0, speech: tuple[Span, ...] = ()) -> Transcript:
    """A stereo call (agent and caller legs) holding ``words``."""
    return Transcript(
        "ko",
        (Leg("agent", duration), Leg("caller", duration)),
        tuple(w for group in words for w in group),
        speech,
    )


def mono(*words: list[Word], duration: float = 60.0) -> Transcript:
    return Transcript("ko", (Leg("any", duration),), tuple(w for group in words for w in group))


def run(transcript: Transcript, rules: str, defaults: str = "") -> CallResult:
    text = f"language: ko\n{defaults}rules:\n" + "".join(
        f"  - {line}\n" for line in rules.strip().splitlines()
    )
    return evaluate(transcript, load_pack("pack.yaml", text))


def one(transcript: Transcript, rule: str, defaults: str = "") -> RuleResult:
    return run(transcript, rule, defaults).rules[0]


class TestMustNotSay:
    def test_a_forbidden_phrase_said_by_the_agent_is_a_violation(self) -> None:
        """The violation carries the time, the speaker and the words heard."""
        t = call(said("agent", 10.0, "고객님 해지를 원하세요"), said("caller", 3.0, "네"))
        result = one(t, "{id: r, must_not_say: [해지], speaker: agent}")
        assert result.outcome == "violated"
        (evidence,) = result.evidence
        assert (evidence.start, evidence.end, evidence.speaker) == (10.4, 10.8, "agent")
        assert evidence.words == ("해지를",)
        assert evidence.phrase == "해지"
        assert "10.4 s" in result.reason

    def test_the_caller_saying_it_is_not_the_agents_violation(self) -> None:
        """speaker: agent reads the agent's leg only."""
        t = call(said("agent", 1.0, "네 알겠습니다"), said("caller", 5.0, "해지 해 주세요"))
        assert one(t, "{id: r, must_not_say: 해지, speaker: agent}").outcome == "met"
        assert one(t, "{id: r, must_not_say: 해지}").outcome == "violated"

    def test_a_low_confidence_match_is_unverifiable(self) -> None:
        """Heard with confidence under min_confidence: neither violated nor met."""
        t = call(said("agent", 2.0, "해지 가능 합니다", conf=0.3))
        result = one(t, "{id: r, must_not_say: 해지, min_confidence: 0.5}")
        assert result.outcome == "unverifiable"
        assert "confidence 0.3" in result.reason
        assert result.evidence  # the moment is still shown


class TestMustSay:
    def test_a_closing_in_the_last_seconds_is_met(self) -> None:
        """window: {last: 30} finds the closing at the end of the call."""
        t = call(said("agent", 50.0, "이용해 주셔서 감사 합니다"))
        result = one(t, "{id: closing, must_say: [감사합니다], speaker: agent, window: {last: 30}}")
        assert result.outcome == "met"
        assert result.window == (30.0, 60.0)
        assert result.evidence[0].words == ("감사", "합니다")

    def test_a_closing_outside_the_window_is_a_violation(self) -> None:
        """Said in the first seconds, it is not in the last 30."""
        t = call(said("agent", 1.0, "감사합니다"), said("agent", 40.0, "네 네"))
        result = one(t, "{id: closing, must_say: 감사합니다, window: {last: 30}}")
        assert result.outcome == "violated"
        assert "the last 30 s" in result.reason

    def test_any_of_the_phrases_counts(self) -> None:
        """A list of phrases: one of them is enough."""
        t = call(said("agent", 1.0, "고맙습니다"))
        assert one(t, "{id: r, must_say: [감사합니다, 고맙습니다]}").outcome == "met"

    def test_unsure_recognition_makes_a_miss_unverifiable(self) -> None:
        """Not found, but the window's words are unsure: unverifiable, not violated."""
        t = call(said("agent", 1.0, "가나 다라 마바", conf=0.2))
        result = one(t, "{id: r, must_say: 감사합니다}", "defaults: {min_confidence: 0.5}\n")
        assert result.outcome == "unverifiable"
        assert result.confidence == 0.2

    def test_speech_without_words_is_unverifiable(self) -> None:
        """The VAD heard the agent but Vosk gave no word: recognition failed there."""
        t = call(speech=(Span(1.0, 4.0, "agent"),))
        assert one(t, "{id: r, must_say: 감사합니다, speaker: agent}").outcome == "unverifiable"

    def test_silence_is_a_violation(self) -> None:
        """Nothing said at all: the phrase was surely not said."""
        result = one(call(), "{id: r, must_say: 감사합니다}")
        assert result.outcome == "violated"
        assert "nothing was said" in result.reason

    def test_fuzzy_finds_a_recognition_error(self) -> None:
        """match: fuzzy accepts 알아봤 어요 for 알았어요 at 0.75, exact does not."""
        t = call(said("agent", 1.0, "네 알아봤 어요"))
        assert one(t, "{id: r, must_say: 알았어요}").outcome == "violated"
        fuzzy = one(t, "{id: r, must_say: 알았어요, match: fuzzy, threshold: 0.75}")
        assert fuzzy.outcome == "met"
        assert 0.75 <= fuzzy.evidence[0].score < 1

    def test_a_pattern_with_a_number(self) -> None:
        """match: pattern finds 번호 [5] 번."""
        t = call(said("agent", 1.0, "예약 번호 [5] 번 입니다"))
        assert one(t, "{id: r, must_say: '번호 [num] 번', match: pattern}").outcome == "met"

    def test_a_phrase_does_not_span_a_long_pause(self) -> None:
        """감사 ... (five seconds) ... 합니다 is not 감사합니다."""
        t = call(said("agent", 1.0, "감사"), said("agent", 6.0, "합니다"))
        assert one(t, "{id: r, must_say: 감사합니다}").outcome == "violated"

    def test_proximity(self) -> None:
        """{near: [A, B], within: N}: both, with at most N words between."""
        t = call(said("agent", 1.0, "해지 하시면 위약금 이 있어요"))
        assert one(t, "{id: r, must_not_say: [{near: [해지, 위약금], within: 1}]}").outcome == (
            "violated"
        )
        assert one(t, "{id: r, must_not_say: [{near: [해지, 이], within: 1}]}").outcome == "met"


class TestSpeakers:
    def test_a_mono_recording_cannot_say_whose_words(self) -> None:
        """On a mono mix, agent rules are unverifiable and say why; speaker any works."""
        t = mono(said("any", 1.0, "해지 해 드릴게요"))
        agent = one(t, "{id: r, must_not_say: 해지, speaker: agent}")
        assert agent.outcome == "unverifiable"
        assert "mono" in agent.reason
        assert one(t, "{id: r, must_not_say: 해지}").outcome == "violated"

    def test_timing_rules_need_both_legs(self) -> None:
        """Talk-over and talk ratio are unverifiable on a mono mix."""
        t = mono(said("any", 1.0, "네"))
        assert one(t, "{id: r, talk_over: {over: 1}}").outcome == "unverifiable"
        assert one(t, "{id: r, talk_ratio: {max: 0.5}}").outcome == "unverifiable"


class TestTiming:
    speech = (
        Span(0.0, 10.0, "agent"),
        Span(8.0, 12.0, "caller"),  # 2 s over the agent, started by the caller
        Span(20.0, 30.0, "agent"),  # 8 s of silence before it
        Span(29.0, 29.5, "caller"),  # a short "네" over the agent
        Span(31.0, 34.0, "caller"),
        Span(32.0, 40.0, "agent"),  # 2 s over the caller, started by the agent
    )

    def test_silence_over_the_limit_is_a_violation_at_its_time(self) -> None:
        """The gap from 12 s to 20 s is 8 s of dead air."""
        result = one(call(speech=self.speech), "{id: r, silence: {over: 5}}")
        assert result.outcome == "violated"
        assert [(e.start, e.end) for e in result.evidence] == [(12.0, 20.0)]
        assert result.measured == 8.0
        assert one(call(speech=self.speech), "{id: r, silence: {over: 8.5}}").outcome == "met"

    def test_quiet_after_the_last_words_is_the_end_of_the_call(self) -> None:
        """From 40 s to the hang-up at 60 s is not dead air."""
        result = one(call(speech=self.speech), "{id: r, silence: {over: 10}}")
        assert result.outcome == "met"

    def test_talk_over_by_anyone_and_by_the_agent(self) -> None:
        """Two 2 s overlaps; only the second was started by the agent; 0.5 s is under 1 s."""
        t = call(speech=self.speech)
        anyone = one(t, "{id: r, talk_over: {over: 1}}")
        assert anyone.outcome == "violated"
        assert [(e.start, e.end, e.speaker) for e in anyone.evidence] == [
            (8.0, 10.0, "caller"),
            (32.0, 34.0, "agent"),
        ]
        agent = one(t, "{id: r, talk_over: {over: 1}, speaker: agent}")
        assert [(e.start, e.speaker) for e in agent.evidence] == [(32.0, "agent")]
        assert one(t, "{id: r, talk_over: {over: 2.5}}").outcome == "met"

    def test_talk_ratio(self) -> None:
        """The agent's share of the speaking time, against min and max."""
        t = call(speech=self.speech)
        result = one(t, "{id: r, talk_ratio: {max: 0.6}}")
        assert result.outcome == "violated"
        assert result.measured == round(28 / (28 + 7.5), 3)
        assert one(t, "{id: r, talk_ratio: {min: 0.1, max: 0.3}, speaker: caller}").outcome == (
            "met"
        )

    def test_speaking_rate_counts_hangul_syllables(self) -> None:
        """Syllables per second of the speaker's speech."""
        words = said("agent", 0.0, "안녕하세요 고객님 무엇을 도와 드릴까요", step=0.8)
        t = call(words, speech=(Span(0.0, 4.0, "agent"),))
        result = one(t, "{id: r, speaking_rate: {max: 3}, speaker: agent}")
        assert result.measured == 4.25  # 17 syllables in 4 s
        assert result.outcome == "violated"
        assert syllables("hello") == 2

    def test_words_stand_in_for_missing_voice_activity(self) -> None:
        """A transcript without speech spans uses its words' times."""
        t = call(said("agent", 0.0, "네"), said("agent", 20.0, "네"))
        assert one(t, "{id: r, silence: {over: 10}}").outcome == "violated"


class TestGroupsAndScore:
    def test_groups_are_three_valued(self) -> None:
        """all_of: one violated violates; any_of: one met meets; unverifiable otherwise."""
        t = call(said("agent", 1.0, "녹음 됩니다"), said("agent", 5.0, "동의 하세요", conf=0.2))
        rules = """
{id: all, all_of: [{must_say: 녹음}, {must_say: 감사}]}
{id: any, any_of: [{must_say: 감사}, {must_say: 녹음}]}
{id: unsure, all_of: [{must_say: 녹음}, {must_not_say: 동의}]}
{id: none, any_of: [{must_say: 감사}, {must_say: 안녕}]}
"""
        result = run(t, rules, "defaults: {min_confidence: 0.5}\n")
        assert [r.outcome for r in result.rules] == ["violated", "met", "unverifiable", "violated"]
        assert [m.outcome for m in result.rule("unsure").members] == ["met", "unverifiable"]

    def test_a_group_passes_its_settings_down(self) -> None:
        """speaker and window on a group apply to members that set none."""
        t = call(said("caller", 1.0, "녹음"), said("agent", 50.0, "녹음"))
        early = "{id: g, speaker: agent, window: {first: 10}, all_of: [{must_say: 녹음}]}"
        assert one(t, early).outcome == "violated"
        late = "{id: g, speaker: agent, all_of: [{must_say: 녹음, window: {last: 20}}]}"
        assert one(t, late).outcome == "met"

    def test_the_score_weighs_verified_rules(self) -> None:
        """Met weight over met and violated weight; unverifiable rules are left out."""
        t = call(said("agent", 1.0, "안녕하세요 해지"), speech=(Span(1.0, 2.0, "agent"),))
        rules = """
{id: a, must_say: 안녕하세요, weight: 3}
{id: b, must_not_say: 해지, weight: 1}
{id: c, must_say: 없음, speaker: agent, weight: 5, min_confidence: 0.95}
"""
        result = run(t, rules)
        assert [r.outcome for r in result.rules] == ["met", "violated", "unverifiable"]
        assert result.score == 75.0
        assert [r.id for r in result.violations] == ["b"]

    def test_no_verifiable_rule_gives_no_score(self) -> None:
        """A score of None, not 0 or 100, when nothing could be checked."""
        result = run(mono(), "{id: a, must_say: x, speaker: agent}")
        assert result.score is None


class TestSummary:
    def test_one_line_per_rule_then_the_score(self) -> None:
        """summary() reads as a short report: outcome and reason per rule, members indented."""
        t = call(said("agent", 1.0, "녹음 해지"))
        result = run(t, "{id: a, must_not_say: 해지}\n{id: g, all_of: [{must_say: 녹음}]}")
        assert result.summary().splitlines() == [
            "a: VIOLATED: said '해지' as '해지' at 1.4 s",
            "g: ok: 1 of 1 met (all needed)",
            "  must_say: ok: said '녹음' as '녹음' at 1.0 s",
            "score: 50 (1 violated of 2)",
        ]


class TestJson:
    def test_a_result_round_trips(self) -> None:
        """CallResult.dumps / loads give back the same result, members included."""
        t = call(said("agent", 1.0, "녹음 됩니다"), speech=(Span(1.0, 2.0, "agent"),))
        result = run(t, "{id: g, all_of: [{must_say: 녹음}, {silence: {over: 5}}]}")
        assert CallResult.loads(result.dumps()) == result
