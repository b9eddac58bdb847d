"""The FAQ matcher: character n-gram TF-IDF for Korean and English."""

from __future__ import annotations

import pytest

from speech.faq import FaqEntry, FaqMatcher

FAQ = [
    FaqEntry("영업시간이 어떻게 되나요", "평일 9시부터 6시까지입니다", "hours"),
    FaqEntry("카드를 분실했어요 어떻게 하나요", "분실 신고는 1번을 누르세요", "lost_card"),
    FaqEntry("배송은 얼마나 걸리나요", "보통 이틀 걸립니다", "shipping"),
    FaqEntry("비밀번호를 잊어버렸어요", "홈페이지에서 재설정하세요", "password"),
    FaqEntry("What are your opening hours", "Nine to six on weekdays", "hours_en"),
]


@pytest.fixture
def matcher() -> FaqMatcher:
    return FaqMatcher(FAQ)


class TestFaqMatcher:
    @pytest.mark.parametrize(
        ("question", "key"),
        [
            ("영업 시간 알려주세요", "hours"),
            ("카드 분실했는데요", "lost_card"),
            ("배송 얼마나 걸려요?", "shipping"),
            ("비밀번호 잊어버렸어", "password"),
            ("when are you open, what hours", "hours_en"),
        ],
    )
    def test_paraphrases_find_their_entry(
        self, matcher: FaqMatcher, question: str, key: str
    ) -> None:
        """A reworded question (other particles, spacing, endings) finds its entry."""
        found = matcher.match(question)
        assert found is not None
        assert found[0].key == key

    def test_unrelated_question_is_none(self, matcher: FaqMatcher) -> None:
        """Nothing close enough: no answer rather than a wrong one."""
        assert matcher.match("오늘 점심 메뉴 추천해 주세요") is None
        assert matcher.match("") is None

    def test_scores_are_ordered_and_bounded(self, matcher: FaqMatcher) -> None:
        """Scores are cosines in 0..1, best first; an exact question scores 1."""
        scores = matcher.scores(FAQ[2].question)
        assert scores[0][0] is FAQ[2]
        assert scores[0][1] == pytest.approx(1.0)
        assert all(0.0 <= s <= 1.0 + 1e-9 for _, s in scores)
        assert [s for _, s in scores] == sorted((s for _, s in scores), reverse=True)

    def test_threshold_decides(self) -> None:
        """A higher threshold turns a loose match into none."""
        question = "영업 시간 알려주세요"
        assert FaqMatcher(FAQ, threshold=0.1).match(question) is not None
        assert FaqMatcher(FAQ, threshold=0.99).match(question) is None

    @pytest.mark.parametrize(
        ("text", "handoff"),
        [
            ("상담원이랑 통화하고 싶어요", True),
            ("직원 연결해 주세요", True),
            ("I want to talk to an agent", True),
            ("agents", False),
            ("배송 얼마나 걸려요", False),
        ],
    )
    def test_handoff(self, matcher: FaqMatcher, text: str, handoff: bool) -> None:
        """Requests for a person are recognised, with Korean particles attached."""
        assert matcher.is_handoff(text) is handoff

    def test_empty_faq_is_refused(self) -> None:
        """An FAQ without entries is a configuration error."""
        with pytest.raises(ValueError, match="at least one"):
            FaqMatcher([])
