"""A local judge: an in-process chat model scores every candidate answer by its likelihood.

The same idea as the logprob method of hosted judges, but exact for tokenizers that split numbers
into digits: P("57") = P("5") * P("7" | "5") * P(no further digit | "57") where a longer candidate
exists, all read from one prompt pass plus one short continuation pass sharing its KV cache. A scale whose
answers are all single tokens (0-3, 0-9, and the yes/no and A/B choices) needs no continuation pass.

The judge pays only for what differs between its prompts, on two levels (`utils.prefill`): the opening
all prompts of a `score` call share (the chat template and the rubric) runs once per call, and within a
batch, prompts of one template share the rest of it. Neither changes a score beyond float tolerance.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

import torch

from utils.chat import encode, render
from utils.hosted import OnResult
from utils.judge.scales import Scale, choice_score, weighted_score
from utils.prefill import (
    CommonPrefix,
    Prefilled,
    cache_kwarg,
    common_prefix,
    continue_prefilled,
    full_attention_only,
    positions_from_mask,
    prefill,
)
from utils.progress import tqdm
from utils.timing import timed

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


class LocalBackend:
    """Judge with a model loaded by `utils.models.load_model`.

    Args:
        model, tokenizer: the judge model.
        model_name: a name for caching and messages.
        batch_size: judge prompts per forward pass.
        share_prefixes: None shares prompt prefixes where `utils.prefill.can_share_prefixes` says it is
            exact; False runs every prompt in full.
    """

    name = "local"
    hosted = False
    default_model: str | None = None  # the section's own model (`utils.judge.choice.judge_choice`)
    key_env: str | None = None
    base_url_env: str | None = None
    # An integer scale is read as the probability-weighted mean over its candidates, rounded: the same
    # candidates and weights as the scale read unrounded (`utils.judge.scales.unrounded`). `Judge.score`
    # relies on it to compute and cache both readings once.
    reads_integers_as_rounded_means = True

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        model_name: str = "local",
        batch_size: int = 16,
        share_prefixes: bool | None = None,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.model_name = model_name
        self.batch_size = batch_size
        self.share_prefixes = share_prefixes
        self.shared_tokens = 0  # prompt tokens not recomputed thanks to shared prefixes
        self.prefilled_tokens = 0  # prompt tokens run through the model
        self.common_prefix = True  # compute the opening all prompts of a call share once per call

    def _render(self, prompt: str) -> str:
        return render([{"role": "user", "content": prompt}], self.tokenizer, add_generation_prompt=True)

    def __repr__(self) -> str:
        return f"LocalBackend(model={self.model_name!r})"

    @cached_property
    def _digit_token_ids(self) -> torch.Tensor:
        vocab = self.tokenizer.get_vocab()
        ids = [i for tok, i in vocab.items() if self.tokenizer.convert_tokens_to_string([tok]).strip().isdigit()]
        return torch.tensor(sorted(ids))

    def _candidate_tokens(self, scale: Scale) -> dict[int, tuple[int, ...]]:
        return {v: tuple(encode(str(v), self.tokenizer)["input_ids"]) for v in scale.candidates}

    def _rows(self, prompts: list[str]) -> list[list[int]]:
        """Token ids of each prompt sent as one user message, ready for the answer."""
        return [encode(self._render(p), self.tokenizer)["input_ids"] for p in prompts]

    def _common_prefix(self, rows: list[list[int]]) -> CommonPrefix | None:
        """The opening all ``rows`` share, run once (counted as prefilled once and shared by the rest).

        Args:
            rows: token ids of every prompt of a call.

        Returns:
            The `utils.prefill.CommonPrefix` (None when not shared: see `utils.prefill.common_prefix`).
        """
        common = common_prefix(self.model, rows, self.share_prefixes) if self.common_prefix else None
        if common is not None:
            self.prefilled_tokens += len(common.tokens)
            self.shared_tokens -= len(common.tokens)  # `prefill` counts it as shared by every row
        return common

    def _prefill(self, rows: list[list[int]], common: CommonPrefix | None) -> Prefilled:
        """`utils.prefill.prefill` of one batch after the call's common prefix, counting tokens."""
        state = prefill(self.model, rows, self.tokenizer.pad_token_id, self.share_prefixes, common)
        self.shared_tokens += state.shared_tokens
        self.prefilled_tokens += sum(len(r) for r in rows) - state.shared_tokens
        return state

    def score(self, prompts: list[str], scale: Scale, on_result: OnResult | None = None) -> list[float | None]:
        """Probability-weighted score per prompt (None when under ``scale.min_mass`` is on numbers).

        Args:
            prompts: judge prompts (one user message each).
            scale: the answer scale.
            on_result: called as ``on_result(index, score)`` as each batch finishes.

        Returns:
            One score (or None) per prompt, in order.
        """
        rows = self._rows(prompts)
        # Prompts of one template side by side, so each batch shares the template's prefix.
        order = sorted(range(len(prompts)), key=lambda i: rows[i])
        results: list[float | None] = [None] * len(prompts)
        with timed("judge") as timer, torch.inference_mode():
            before = self.prefilled_tokens
            common = self._common_prefix(rows)
            for start in tqdm(range(0, len(order), self.batch_size), desc="judge (local)", leave=False):
                idx = order[start : start + self.batch_size]
                batch = [rows[i] for i in idx]
                if scale.kind == "choice":
                    values = [choice_score(p, scale) for p in self._option_probabilities(batch, scale, common)]
                else:
                    values = [weighted_score(p, scale) for p in self._candidate_probabilities(batch, scale, common)]
                for i, value in zip(idx, values):
                    results[i] = value
                    if on_result is not None:
                        on_result(i, value)
            timer.add(tokens=self.prefilled_tokens - before)
        return results

    def _option_token_ids(self, scale: Scale) -> list[list[int]]:
        """Per option, the distinct first tokens of its spellings (at the start of the answer)."""
        ids = []
        for spellings in scale.options:
            ids.append(sorted({encode(s, self.tokenizer)["input_ids"][0] for s in spellings}))
        return ids

    @torch.inference_mode()
    def option_probabilities(self, prompts: list[str], scale: Scale) -> list[list[float]]:
        """P(the answer starts with option k), per prompt, from one prompt pass (shared prefixes once).

        Args:
            prompts: judge prompts (one user message each), run as one batch.
            scale: a ``"choice"`` scale.

        Returns:
            Per prompt, one probability per option of ``scale.options`` (spellings summed).
        """
        rows = self._rows(prompts)
        return self._option_probabilities(rows, scale, self._common_prefix(rows))

    def _option_probabilities(
        self, rows: list[list[int]], scale: Scale, common: CommonPrefix | None
    ) -> list[list[float]]:
        state = self._prefill(rows, common)
        probs = state.logits.float().softmax(-1)  # [B, V]
        per_option = [probs[:, ids].sum(-1) for ids in self._option_token_ids(scale)]
        return torch.stack(per_option, dim=1).tolist()

    @torch.inference_mode()
    def candidate_probabilities(self, prompts: list[str], scale: Scale) -> list[dict[int, float]]:
        """P(answer = v) for every candidate v of the scale, for each judge prompt.

        Prompts that share a prefix (the judge template before ``{question}``) compute it once.

        Args:
            prompts: judge prompts (sent as one user message each), run as one batch.
            scale: the answer scale.

        Returns:
            Per prompt, a dict candidate -> probability (not renormalised).
        """
        rows = self._rows(prompts)
        return self._candidate_probabilities(rows, scale, self._common_prefix(rows))

    def _candidate_probabilities(
        self, rows: list[list[int]], scale: Scale, common: CommonPrefix | None
    ) -> list[dict[int, float]]:
        state = self._prefill(rows, common)
        first = state.logits.log_softmax(-1)  # [B, V]

        candidates = self._candidate_tokens(scale)
        prefixes = sorted({seq[:k] for seq in candidates.values() for k in range(1, len(seq))})
        # Run only prefixes that are not themselves prefixes of a longer one; read the rest inside them.
        # When every candidate is one token (0-3, 0-9) there is nothing to run: one prompt pass only.
        runs = [p for p in prefixes if not any(q != p and q[: len(p)] == p for q in prefixes)]
        after: dict[tuple[int, ...], torch.Tensor] = {}
        if runs:
            after = self._continuations(state, runs)  # prefix -> [B, V]

        digits = self._digit_token_ids.to(first.device)
        results = []
        for b in range(len(rows)):
            probs = {}
            for value, seq in candidates.items():
                logp = first[b, seq[0]]
                for k in range(1, len(seq)):
                    logp = logp + after[seq[:k]][b, seq[k]]
                if seq in after:  # a longer candidate exists: the number must end here
                    p_more = after[seq][b, digits].exp().sum().clamp(max=1.0)
                    logp = logp + torch.log1p(-p_more + 1e-12)
                probs[value] = float(logp.exp())
            results.append(probs)
        return results

    def _continuations(self, state: Prefilled, runs: list[tuple[int, ...]]) -> dict:
        """Log-probabilities after every prefix of every run, sharing the prompt's KV cache.

        On full-attention models the runs follow their prompt end to end in one row: a 4-D mask lets each
        run's tokens see the prompt and their own run only, and each run's positions start where the
        prompt ends. So the prompt's cache is read once per prompt instead of copied once per run, and no
        run is padded to the longest (on the 0-100 scale, 10 tokens a prompt instead of 9 runs x 2).
        Models with sliding-window layers copy the cache per run (a custom mask would bypass the window).
        """
        if not full_attention_only(self.model):
            return self._continuations_per_run(state, runs)
        cache, mask = state.cache, state.attention_mask
        n_prompts = mask.shape[0]
        ids = torch.tensor([t for run in runs for t in run], device=mask.device)  # no padding: runs end to end
        run_of = torch.tensor([r for r, run in enumerate(runs) for _ in run], device=mask.device)
        step = torch.tensor([k for run in runs for k in range(len(run))], device=mask.device)
        # Query (run a, step i) sees key (run b, step j) when a == b and j <= i: each run's causal triangle.
        own_run = (run_of[:, None] == run_of[None, :]) & (step[None, :] <= step[:, None])
        sees = torch.cat([mask.bool()[:, None, :].expand(-1, len(ids), -1), own_run.expand(n_prompts, -1, -1)], 2)
        blocked = torch.finfo(self.model.dtype).min
        additive = torch.zeros(sees.shape, dtype=self.model.dtype, device=mask.device).masked_fill(~sees, blocked)
        positions = positions_from_mask(mask)[:, -1:] + 1 + step[None, :]
        out = self.model(
            input_ids=ids.expand(n_prompts, -1),
            attention_mask=additive[:, None],
            position_ids=positions,
            use_cache=True,
            **cache_kwarg(self.model, cache),
        )
        logp = out.logits.float().log_softmax(-1)  # [n_prompts, tokens of all runs, vocab]
        after, start = {}, 0
        for run in runs:
            for k in range(1, len(run) + 1):
                after[run[:k]] = logp[:, start + k - 1]
            start += len(run)
        return after

    def _continuations_per_run(self, state: Prefilled, runs: list[tuple[int, ...]]) -> dict:
        """`_continuations` with the prompt's cache copied once per run (one row per prompt and run)."""
        n_prompts, n_runs = state.attention_mask.shape[0], len(runs)
        rows = [p for p in range(n_prompts) for _ in runs]
        logits = continue_prefilled(self.model, state, [list(r) for _ in range(n_prompts) for r in runs], rows)
        logp = logits.log_softmax(-1).view(n_prompts, n_runs, logits.shape[1], -1)
        after = {}
        for r, run in enumerate(runs):
            for k in range(1, len(run) + 1):
                after[run[:k]] = logp[:, r, k - 1]
        return after
