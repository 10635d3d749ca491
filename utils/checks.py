"""Helpers for the sections' exercise checks (``<section>/tests.py``)."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from functools import cache

import torch
from torch import nn

from utils.hooks import hooked, hooks_restored, user_hook_counts
from utils.judge.judge import Judge
from utils.layers import get_layers


class CheckFailed(AssertionError):
    """An exercise check failed; the message names the likely mistake."""


def check(condition: bool, message: str) -> None:
    """Raise `CheckFailed` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise CheckFailed(message)


def unit_vector(v: torch.Tensor) -> torch.Tensor:
    """``v`` scaled to unit length along its last dimension (in float32)."""
    v = v.float()
    return v / v.norm(dim=-1, keepdim=True)


# A small trait file in the shape of section 3's data, for checks that run on tiny models.
TINY_TRAIT = {
    "instruction": [
        {"pos": "Agree with everything.", "neg": "Be honest with the user."},
        {"pos": "Flatter the user.", "neg": "Skip compliments."},
    ],
    "questions": ["Is my plan good?", "Am I right about the moon?", "Rate my poem."],
    "eval_prompt": "T [Q] {question} [A] {answer}",
}
TINY_COHERENCE = "C [Q] {question} [A] {answer}"


class CheckForwardError(RuntimeError):
    """Raised inside the forward pass by a check, to see whether hooks are removed after an error."""


def _raise_in_forward(module, inputs, output):
    raise CheckForwardError("a forward pass failed (raised on purpose by the check)")


def check_hooks_removed_after_error(model: nn.Module, run: Callable[[], object], message: str) -> None:
    """Run ``run()`` while ``model``'s forward pass raises, then check it left none of its hooks registered.

    The first block raises `CheckForwardError` in every forward pass, so whatever ``run`` registered must be
    removed on the error's way out (try/finally, or a context manager). Any exception ``run`` lets through
    is expected and swallowed; the model's hooks are put back as they were whatever ``run`` does.

    Raises:
        CheckFailed: with ``message`` (the hint for the student), when a hook of ``run``'s stays registered.
    """
    with hooks_restored([model]):  # leave the model clean whatever the function does
        before = user_hook_counts(model)
        with hooked({get_layers(model)[0]: _raise_in_forward}):
            try:
                run()
            except Exception:  # noqa: BLE001 - the error is the check's own; any exception type is fine here
                pass
        check(user_hook_counts(model) == before, message)


def passed(name: str) -> None:
    print(f"✔ {name} passed")


def tiny(name: str = "tiny-qwen2"):
    """A tiny random model and tokenizer, built once per process (checks must not modify it)."""
    return _tiny(name)


@cache
def _tiny(name: str):
    from utils.models import load_model

    return load_model(name, device="cpu")


def close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-4, atol: float = 1e-5) -> bool:
    return a.shape == b.shape and torch.allclose(a.float(), b.float(), rtol=rtol, atol=atol)


class FunctionBackend:
    """A judge backend that applies a Python function to each prompt (for checks and tests)."""

    name = "function"

    def __init__(self, fn, model: str = "rule"):
        self.fn = fn
        self.model = model
        self.prompts: list[str] = []

    def __repr__(self) -> str:
        return f"FunctionBackend({self.model!r})"

    @property
    def model_name(self) -> str:
        return self.model

    def score(self, prompts, scale):
        self.prompts.extend(prompts)
        return [self.fn(p, scale) for p in prompts]


def rule_judge(fn, name: str = "rule") -> Judge:
    """A real `Judge` over a `FunctionBackend`, remembering nothing, so every request reaches ``fn``.

    It is the checks' instrument, not the student's judge: it is made without announcing itself, so a
    check cell prints its one line of verdict and nothing about the rule inside it.
    """
    with contextlib.redirect_stdout(io.StringIO()):
        return Judge(FunctionBackend(fn, name), cache_path=None, remember=False)
