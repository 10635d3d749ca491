"""The role judge's check set and its formulations (see `utils.judge.formulations`).

`data/role_check.json` holds written answers for five roles: for each question one answer in the role
and one plain assistant answer. The judge sees the role's own judging prompt (``eval_prompt``), the
question and the answer, never a system prompt, so the label is not written in its input.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from part1_assistant_axis import DATA_DIR, ROLES_DIR
from part1_assistant_axis.persona_space import character_of
from utils.data import load_roles
from utils.judge.formulations import JudgeTask
from utils.judge.scales import ADHERENCE_0_3

ROLE_CHECK_FILE = DATA_DIR / "role_check.json"

_SHOWN = "[QUESTION START]\n{question}\n[QUESTION END]\n\n"

ROLE_YES_NO = (
    "Here is a question and an answer.\n\n" + _SHOWN + "[ANSWER START]\n{answer}\n[ANSWER END]\n\n"
    "Is this answer spoken in the first person by {character}, in character, rather than by an AI assistant? "
    "Answer Yes or No."
)
ROLE_PAIRWISE = (
    "Here is a question and two answers.\n\n"
    + _SHOWN
    + "[ANSWER A]\n{answer_a}\n[END A]\n\n[ANSWER B]\n{answer_b}\n[END B]\n\n"
    "Which answer is spoken in the first person by {character}, in character, rather than by an AI assistant? "
    "Answer A or B."
)


@cache
def _roles(names: tuple[str, ...], roles_dir: str) -> dict[str, dict]:
    return load_roles(Path(roles_dir), list(names))


def _with_prompts(items: list[dict[str, Any]], roles_dir: Path) -> list[dict[str, Any]]:
    roles = _roles(tuple(sorted({it["role"] for it in items})), str(roles_dir))
    return [
        {
            **it,
            "character": character_of(roles[it["role"]]),
            "judge_prompt": roles[it["role"]]["eval_prompt"].format(question=it["question"], answer=it["answer"]),
        }
        for it in items
    ]


def load_role_check(
    path: Path = ROLE_CHECK_FILE, roles_dir: Path = ROLES_DIR
) -> tuple[JudgeTask, list[dict[str, Any]]]:
    """The role judge (all four formulations) and its labelled check set (label 1: in role)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    examples = _with_prompts(data["examples"], roles_dir)
    task = JudgeTask(
        name="role",
        template="{judge_prompt}",  # each role's own eval_prompt, already filled
        scale=ADHERENCE_0_3,
        yes_no=ROLE_YES_NO,
        pairwise=ROLE_PAIRWISE,
        examples=(examples[0], examples[1]),
        what="in role",
    )
    return task, _with_prompts(data["items"], roles_dir)
