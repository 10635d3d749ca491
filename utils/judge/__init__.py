"""LLM judges (autoraters) behind one interface; see `make_judge` and `make_section_judge`."""

from utils.hosted import Failed
from utils.judge.choice import DEFAULT_JUDGE_MODELS, choose_backend, judge_choice
from utils.judge.judge import Judge, make_judge, make_section_judge
from utils.judge.scales import ADHERENCE_0_3, LIKERT_1_5, SCORE_0_100, Scale, parse_text, tagged

__all__ = [
    "ADHERENCE_0_3",
    "DEFAULT_JUDGE_MODELS",
    "LIKERT_1_5",
    "SCORE_0_100",
    "Failed",
    "Judge",
    "Scale",
    "choose_backend",
    "judge_choice",
    "make_judge",
    "make_section_judge",
    "parse_text",
    "tagged",
]
