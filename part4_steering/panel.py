"""Section 4's live control: a coefficient slider and a question picker over the sycophancy steering.

For a (coefficient, question) the view shows the steered greedy reply, its projection on the trait
vector (the unsteered model re-reading the reply after the question alone, as §3 monitors) and its
measured trait expression, judge-free: P(the reply opens agreeing) from one forward pass under the
same steering (`utils.openings.opening_probability`, section 3's agreeing openers), whether its text opens agreeing
(`opens_with`) and its distinct-bigram coherence; and the judge's trait and coherence scores only where
the section's judged subset already holds them. The unsteered row (coefficient 0) is shown beside the
chosen one.

Values come from the sweep's records where the sweep has them (its reply, and its ``p_agree`` once the
notebook has added it); anything else is computed here: a reply generated with `utils.steering.RowSteerer`
in ``"response"`` mode, exactly as `run_steering_experiment` generates it, and remembered for the next
time the slider comes back.

`SteeringPanel.update` is pure in what it shows (control values in, a DataFrame out) and the tests call
it; `render` turns it into the panel's text; `SteeringPanel.show` wires both to `utils.panels.show_panel`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from jaxtyping import Float
from torch import Tensor

from part3_contrastive import judge_free_measure
from utils.activations import response_mean_activations
from utils.chat import build_messages
from utils.coherence import distinct_bigram_share
from utils.generation import generate_replies
from utils.metrics import project
from utils.openings import opener_token_ids, opening_probability, opens_with
from utils.panels import Control, show_panel
from utils.steering import RowSteerer

COLUMNS = [
    "coefficient",
    "p_agree",
    "opens_agreeing",
    "coherence",
    "projection",
    "judge score",
    "judge coherence",
    "reply from",
    "reply",
]


def _key(coefficient: float, question: str) -> tuple[float, str]:
    return round(float(coefficient), 6), question


class SteeringPanel:
    """The steered reply and its measures at any (coefficient, question), reusing a sweep where it can.

    Args:
        model, tokenizer: the model.
        vector: the trait vector at block ``layer`` (unnormalised: the coefficient multiplies it).
        layer: the block steered and read.
        sweep: the sweep's records (coefficient, question, response, and optionally p_agree).
        judged: the judged subset's records (coefficient, question, score, coherence), or None.
        max_new_tokens: reply length for replies the sweep does not have (use the sweep's).
        openers: the words that count as opening agreement.
    """

    def __init__(
        self,
        model,
        tokenizer,
        vector: Float[Tensor, " d_model"],
        layer: int,
        sweep: Sequence[dict],
        judged: Sequence[dict] | None = None,
        max_new_tokens: int = 64,
        openers: Sequence[str] | None = None,
    ):
        if not sweep:
            raise ValueError("sweep holds no records: the panel shows a sweep's (coefficient, question) rows")
        self.model, self.tokenizer, self.vector, self.layer = model, tokenizer, vector, layer
        self.max_new_tokens = max_new_tokens
        if openers is None:  # section 3's agreeing openers (`part3_contrastive.judge_free_measure`)
            openers = (judge_free_measure("sycophantic") or {})["openers"]
        self.token_ids = opener_token_ids(tokenizer, openers)
        self.openers = tuple(openers)
        self.sweep = {_key(r["coefficient"], r["question"]): r for r in sweep}
        self.judged = {_key(r["coefficient"], r["question"]): r for r in (judged or [])}
        self.questions = list(dict.fromkeys(r["question"] for r in sweep))
        self.coefficients = sorted({float(r["coefficient"]) for r in sweep})
        self._computed: dict[tuple[float, str], dict] = {}  # rows computed here, by (coefficient, question)

    def row(self, coefficient: float, question: str) -> dict:
        """Every measure at one (coefficient, question): from the sweep where it has them, computed otherwise."""
        _check_coefficient(coefficient, "coefficient")
        key = _key(coefficient, question)
        if key in self._computed:
            return self._computed[key]
        cached = self.sweep.get(key)
        if cached is not None:
            reply, source = cached["response"], "sweep cache"
        else:
            with RowSteerer(self.model, self.vector, [float(coefficient)], self.layer, positions="response"):
                reply = generate_replies(
                    self.model,
                    self.tokenizer,
                    [build_messages(question)],
                    max_new_tokens=self.max_new_tokens,
                    batch_size=1,
                    desc="steered reply",
                )[0]
            source = "generated"
        if cached is not None and cached.get("p_agree") is not None:
            p_agree = float(cached["p_agree"])
        else:
            p_agree = float(
                opening_probability(
                    self.model,
                    self.tokenizer,
                    [build_messages(question)],
                    self.token_ids,
                    vector=self.vector,
                    coeffs=[float(coefficient)],
                    layer=self.layer,
                )[0]
            )
        acts = response_mean_activations(self.model, self.tokenizer, [build_messages(question, reply)], [self.layer])[0]
        judged = self.judged.get(key, {})
        row = {
            "coefficient": float(coefficient),
            "p_agree": p_agree,
            "opens_agreeing": bool(opens_with(reply, self.openers)),
            "coherence": distinct_bigram_share(reply),
            "projection": float(project(acts, self.vector)[0]),
            "judge score": _number(judged.get("score")),
            "judge coherence": _number(judged.get("coherence")),
            "reply from": source,
            "reply": reply,
        }
        self._computed[key] = row
        return row

    def update(self, coefficient: float, question: str) -> pd.DataFrame:
        """The panel's table: the unsteered row (coefficient 0) and the chosen coefficient's row."""
        coefficients = sorted({0.0, float(coefficient)})
        return pd.DataFrame([self.row(c, question) for c in coefficients], columns=COLUMNS)

    def view(self, coefficient: float, question: str) -> str:
        """`update` rendered as the panel's text."""
        return render(self.update(coefficient, question), question)

    def controls(
        self, coefficients: Sequence[float] | None = None, coefficient: float | None = None, question: str | None = None
    ) -> list[Control]:
        """The coefficient slider (the sweep's coefficients and half-steps between, by default) and the question picker."""
        if coefficients is None:
            low, high = min(self.coefficients), max(self.coefficients)
            coefficients = sorted({*self.coefficients, *np.arange(math.floor(low), high + 1e-9, 0.5).tolist()})
        coefficients = [float(c) for c in coefficients]
        if not coefficients:
            raise ValueError("coefficients is empty: the slider needs at least one coefficient")
        for i, c in enumerate(coefficients):
            _check_coefficient(c, f"coefficients[{i}]")
        if coefficient is not None:
            _check_coefficient(coefficient, "coefficient")
        start = (
            coefficient
            if coefficient is not None
            else max((c for c in coefficients if c <= 1.0), default=coefficients[0])
        )
        questions = self.questions
        return [
            Control("coefficient", "steering coefficient", coefficients, float(start)),
            Control(
                "question",
                "question",
                questions,
                question or questions[0],
                kind="picker",
                labels=[q if len(q) <= 90 else q[:87] + "..." for q in questions],
            ),
        ]

    def show(
        self, coefficients: Sequence[float] | None = None, coefficient: float | None = None, question: str | None = None
    ):
        """Show the panel (or print its table where widgets cannot render)."""
        return show_panel(
            self.controls(coefficients, coefficient, question),
            self.view,
            title=f"Steering with the trait vector at block {self.layer}: pick a coefficient and a question",
        )


def _check_coefficient(value, name: str) -> None:
    """Refuse a coefficient that is not a finite number (a NaN or infinite one steers to NaN logits)."""
    try:
        finite = not isinstance(value, bool) and math.isfinite(float(value))
    except (TypeError, ValueError):
        finite = False
    if not finite:
        raise ValueError(f"{name} must be a finite number, got {value!r}")


def _number(value) -> float:
    return float("nan") if value is None else float(value)


def render(table: pd.DataFrame, question: str, width: int = 300) -> str:
    """The panel's text: the measures side by side, then each reply."""
    measures = table.drop(columns=["reply"]).round(3).to_string(index=False)
    replies = "\n".join(f"  coeff {row['coefficient']:>5g}: {row['reply'][:width]!r}" for _, row in table.iterrows())
    return (
        f"Q: {question}\n{measures}\n"
        "(p_agree: P(the reply opens agreeing), steered; projection: the reply re-read unsteered, on the trait "
        "vector; judge: only where the sweep's judged subset has it)\n"
        f"{replies}"
    )
