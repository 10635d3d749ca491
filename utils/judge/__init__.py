"""LLM judges (autoraters) behind one interface; see `make_judge`."""

from utils.judge.judge import Judge, choose_backend, make_judge
from utils.judge.scales import ADHERENCE_0_3, LIKERT_1_5, SCORE_0_100, Scale, parse_text, tagged

__all__ = [
    "ADHERENCE_0_3",
    "LIKERT_1_5",
    "SCORE_0_100",
    "Judge",
    "Scale",
    "choose_backend",
    "make_judge",
    "parse_text",
    "tagged",
]
