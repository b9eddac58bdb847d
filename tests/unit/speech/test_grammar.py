"""Grammar building and the engine's own confidence (no model: a word list stands in)."""

from __future__ import annotations

import json

from speech.grammar import Word, build_grammar, normalise, score, similarity

VOCAB = {"예약", "안내", "기술", "지원", "가", "나", "다", "하", "라", "아니요"}


def knows(word: str) -> bool:
    return word in VOCAB


class TestBuild:
    def test_unknown_words_are_dropped_and_fillers_added(self) -> None:
        """Phrases with unknown words are dropped; fillers the model knows become garbage."""
        grammar = build_grammar(["예약", "기술 지원", "환불"], language="ko", knows=knows)
        assert list(grammar.phrases) == ["예약", "기술 지원"]
        assert grammar.dropped == ("환불",)
        assert grammar.unknown_words == ("환불",)
        assert grammar.garbage == {"가", "나", "다", "하", "라"}
        spec = json.loads(grammar.to_json() or "[]")
        assert spec[:2] == ["예약", "기술 지원"]

    def test_unk_is_used_when_the_model_has_it(self) -> None:
        """A model with [unk] gets [unk] and no fillers."""
        grammar = build_grammar(["예약"], language="ko", knows=lambda w: w in VOCAB | {"[unk]"})
        assert grammar.garbage == {"[unk]"}

    def test_syllables_of_the_phrases_are_not_fillers(self) -> None:
        """A filler that is part of an option would steal it: it is left out."""
        grammar = build_grammar(["하나"], language="ko", knows=lambda w: True)
        assert "하" not in grammar.garbage
        assert "나" not in grammar.garbage

    def test_normalise(self) -> None:
        """Case, punctuation and spacing do not matter."""
        assert normalise("  Agent,  please! ") == "agent please"


def w(word: str, conf: float, start: float, end: float) -> Word:
    return Word(word, conf, start, end)


class TestScore:
    grammar = build_grammar(["예약", "기술 지원", "아니요"], language="ko", knows=knows)

    def test_clean_phrase_scores_its_confidence(self) -> None:
        """A phrase alone scores its mean word confidence."""
        scored = score(
            [w("기술", 0.9, 0.0, 0.4), w("지원", 0.7, 0.4, 0.8)], "기술 지원", self.grammar, 0.8
        )
        assert scored.phrase == "기술 지원"
        assert abs(scored.confidence - 0.8) < 1e-9

    def test_phrase_inside_other_speech_scores_low(self) -> None:
        """A phrase covering a third of the speech scores a third of its confidence."""
        words = [w("가", 1.0, 0.0, 0.4), w("하", 1.0, 0.4, 0.8), w("아니요", 1.0, 0.8, 1.2)]
        scored = score(words, "가 하 아니요", self.grammar, 1.2)
        assert scored.phrase == "아니요"
        assert abs(scored.confidence - 1 / 3) < 1e-9

    def test_two_options_are_no_match(self) -> None:
        """Two different options at once point to none."""
        words = [w("예약", 1.0, 0.0, 0.4), w("아니요", 1.0, 0.4, 0.8)]
        assert score(words, "예약 아니요", self.grammar, 0.8).phrase is None

    def test_only_garbage_is_no_match(self) -> None:
        """Only fillers: no phrase, no confidence."""
        scored = score([w("가", 1.0, 0.0, 0.3)], "가", self.grammar, 0.3)
        assert (scored.phrase, scored.confidence, scored.content) == (None, 0.0, "")

    def test_free_text_against_phrases(self) -> None:
        """Without grammar support, text is compared to phrases by edit distance."""
        grammar = build_grammar(["예약", "아니요"], language="ko", knows=knows, constrained=False)
        scored = score([w("예약이요", 0.8, 0.0, 0.5)], "예약이요", grammar, 0.5)
        assert scored.phrase == "예약"
        assert 0.3 < scored.confidence < 0.8

    def test_similarity(self) -> None:
        """Identical is 1, a contained phrase is its share, unrelated is low."""
        assert similarity("예약", "예약") == 1.0
        assert abs(similarity("예약 해 주세요", "예약") - 2 / 6) < 1e-9
        assert similarity("안녕", "예약") == 0.0
