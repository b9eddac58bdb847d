"""Finding phrases in recognised words: exact, pattern, fuzzy on jamo, proximity."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from speech.qa.phrases import (
    MAX_STAR,
    PatternError,
    Phrase,
    Stream,
    Token,
    find_near,
    jamo,
    normalise,
    parse_pattern,
)
from speech.qa.transcript import Word


def stream(text: str) -> Stream:
    """Words as a recogniser would give them: one per space-separated token, 0.5 s each."""
    return Stream([Word(t, i * 0.5, i * 0.5 + 0.4, 0.9) for i, t in enumerate(text.split())])


def found(phrase: Phrase, text: str) -> list[str]:
    s = stream(text)
    return [" ".join(w.word for w in s.words[h.first : h.last + 1]) for h in phrase.find(s)]


HANGUL = st.characters(min_codepoint=0xAC00, max_codepoint=0xD7A3)
WORD = st.text(HANGUL, min_size=1, max_size=4)


class TestNormalise:
    def test_case_punctuation_and_spaces_do_not_matter(self) -> None:
        """Phrases are compared lower-cased, NFC, without spaces or punctuation."""
        assert normalise(" 감사 합니다! OK.") == "감사합니다ok"

    def test_jamo_is_what_is_heard(self) -> None:
        """Syllables decompose; the silent initial ㅇ goes; ㅐ and ㅔ are one vowel."""
        assert jamo("감") == "ㄱㅏㅁ"
        assert jamo("아") == "ㅏ"
        assert jamo("해") == jamo("헤") == "ㅎㅔ"
        assert jamo("abc") == "abc"


class TestParse:
    def test_wildcards_become_tokens(self) -> None:
        """*, ? and [num] are tokens; text between them is normalised."""
        assert parse_pattern("계좌 번호 [num] 번*입니다?") == (
            Token("text", "계좌번호"),
            Token("num"),
            Token("text", "번"),
            Token("star"),
            Token("text", "입니다"),
            Token("one"),
        )

    def test_edge_stars_are_dropped(self) -> None:
        """A leading or trailing * adds nothing: matches start at a word anyway."""
        assert parse_pattern("* 해지 *") == (Token("text", "해지"),)

    @pytest.mark.parametrize(
        ("pattern", "message"),
        [
            ("[foo]", "brackets are only allowed as [num]"),
            ("* ?", "has no words to look for"),
            ("!!", "has no words to look for"),
        ],
    )
    def test_bad_patterns_say_what_is_allowed(self, pattern: str, message: str) -> None:
        """A pattern that cannot be matched is refused with what is allowed."""
        with pytest.raises(PatternError, match=re.escape(message)):
            parse_pattern(pattern)

    def test_exact_phrases_refuse_wildcards(self) -> None:
        """Without match: pattern, a wildcard is an error that names the setting."""
        with pytest.raises(PatternError, match="match: pattern"):
            Phrase("해지*")

    @settings(deadline=None)  # timing varies on a shared machine
    @given(st.lists(WORD, min_size=1, max_size=5))
    def test_plain_text_is_one_literal(self, words: list[str]) -> None:
        """Plain words parse to one text token: the words without spaces."""
        assert parse_pattern(" ".join(words)) == (Token("text", "".join(words)),)

    @settings(deadline=None)  # timing varies on a shared machine
    @given(
        st.lists(
            st.one_of(WORD, st.sampled_from(["*", "?", "[num]"])), min_size=1, max_size=8
        ).filter(lambda parts: any(p not in ("*", "?") for p in parts))
    )
    def test_every_pattern_of_words_and_wildcards_parses(self, parts: list[str]) -> None:
        """Any mix of words and wildcards with at least one word or [num] parses and compiles."""
        phrase = Phrase(" ".join(parts), "pattern")
        assert phrase.tokens
        phrase.find(stream("하나 둘"))  # compiles and runs

    @settings(deadline=None)  # timing varies on a shared machine
    @given(st.lists(WORD, min_size=1, max_size=4), st.lists(WORD, max_size=3))
    def test_a_pattern_matches_the_text_it_was_made_from(
        self, words: list[str], before: list[str]
    ) -> None:
        """Words replaced by ? (one syllable) or * still match the original words."""
        pattern = " ".join(
            ["?" * len(w) if i % 2 else w for i, w in enumerate(words)] if len(words) > 1 else words
        )
        text = " ".join([*before, *words])
        assert found(Phrase(pattern, "pattern"), text)


class TestExact:
    def test_a_phrase_may_end_inside_a_word(self) -> None:
        """Korean words take particles and endings: 해지 is found in 해지를 and 해지해."""
        assert found(Phrase("해지"), "고객님 해지를 원하시면 해지해 드려요") == ["해지를", "해지해"]

    def test_a_phrase_starts_where_a_word_starts(self) -> None:
        """공해지역 does not hold the word 해지."""
        assert found(Phrase("해지"), "공해지역 입니다") == []

    def test_spacing_does_not_matter(self) -> None:
        """감사합니다 matches 감사 합니다, and 감사 합니다 matches 감사합니다."""
        assert found(Phrase("감사합니다"), "네 감사 합니다") == ["감사 합니다"]
        assert found(Phrase("감사 합니다"), "감사합니다") == ["감사합니다"]

    def test_overlapping_finds_are_one(self) -> None:
        """A phrase found twice over the same words counts once."""
        assert found(Phrase("네 네"), "네 네 네") == ["네 네"]


class TestPattern:
    def test_num_matches_digits_and_number_words(self) -> None:
        """[num] stands for Vosk's [5] digits and for Korean number words."""
        phrase = Phrase("번호 [num] 번", "pattern")
        assert found(phrase, "번호 [5] 번 입니다") == ["번호 [5] 번"]
        assert found(phrase, "번호 삼 번 입니다") == ["번호 삼 번"]
        assert found(phrase, "번호 다섯 번") == ["번호 다섯 번"]
        assert found(phrase, "번호 는 번") == []

    def test_star_is_bounded(self) -> None:
        """* stands for a few words, never for a whole conversation."""
        phrase = Phrase("해지 * 위약금", "pattern")
        assert found(phrase, "해지 하시면 위약금") == ["해지 하시면 위약금"]
        far = " ".join(["가나다"] * (MAX_STAR // 3 + 2))
        assert found(phrase, f"해지 {far} 위약금") == []

    def test_question_mark_is_one_syllable(self) -> None:
        """? stands for exactly one character (one Hangul syllable)."""
        assert found(Phrase("감사?니다", "pattern"), "감사합니다") == ["감사합니다"]
        assert found(Phrase("감사?니다", "pattern"), "감사드립니다") == []


class TestFuzzy:
    def test_a_close_recognition_error_is_found(self) -> None:
        """알아봤어요 for 알았어요 is two letters off: found at 0.75 with its similarity."""
        s = stream("네 알아봤 어요")
        hits = Phrase("알았어요", "fuzzy", 0.75).find(s)
        assert [(h.first, h.last) for h in hits] == [(1, 2)]
        assert 0.75 <= hits[0].score < 1

    def test_a_far_recognition_is_not(self) -> None:
        """헬기 is too far from 해지 at 0.75."""
        assert found(Phrase("해지", "fuzzy", 0.75), "헬기 가 왔어요") == []

    def test_exact_text_scores_one(self) -> None:
        """The phrase itself scores 1.0."""
        hits = Phrase("반품", "fuzzy", 0.9).find(stream("반품 해 주세요"))
        assert [h.score for h in hits] == [1.0]

    @settings(deadline=None)  # timing varies on a shared machine
    @given(st.lists(WORD, min_size=1, max_size=4), st.floats(0.3, 1.0))
    def test_the_phrase_itself_is_always_found(self, words: list[str], threshold: float) -> None:
        """At any threshold, the very words of the phrase match it."""
        assert Phrase(" ".join(words), "fuzzy", threshold).find(stream(" ".join(words)))


class TestNear:
    def test_within_counts_the_words_between(self) -> None:
        """A within 2 of B: at most two words between them, in either order."""
        a, b = Phrase("해지"), Phrase("위약금")
        assert find_near(a, b, 2, stream("해지 하시면 바로 위약금")) != []
        assert find_near(a, b, 1, stream("해지 하시면 바로 위약금")) == []
        assert find_near(a, b, 0, stream("위약금 해지")) != []

    def test_the_hit_spans_both(self) -> None:
        """The finding covers both phrases and what is between."""
        hits = find_near(Phrase("해지"), Phrase("위약금"), 3, stream("네 해지 하면 위약금 있어요"))
        assert [(h.first, h.last) for h in hits] == [(1, 3)]
