"""Hook mechanics, in one place: reading and replacing a block's output, capture hooks that remove
themselves, and telling the user's hooks from the ones transformers installs.

Every hook the course registers lives inside a context manager that removes it in ``finally``, so an
exception inside the ``with`` block never leaves a hook behind. Nested contexts remove only their own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from jaxtyping import Float
from torch import Tensor, nn

from utils.layers import check_block_indices, get_layers

# A forward hook: (module, inputs, output) -> a replacement output, or None to keep it.
ForwardHook = Callable[[nn.Module, Any, Any], Any]


class StopForward(Exception):
    """Raised by a capture hook to end the forward pass right after the deepest block it needs.

    Args:
        message: what to say if it escapes (by default: who raised it, and who should catch it).
    """

    def __init__(
        self,
        message: str = "a capture hook (utils.hooks.capture_block_outputs) ended the forward pass after the "
        "deepest block it records, on purpose. Run the model through utils.activations.run_capturing, or "
        "catch StopForward around the model call, or pass stop_after_last=False",
    ):
        super().__init__(message)


def block_output(output: Tensor | tuple) -> Float[Tensor, "batch seq d_model"]:
    """The hidden-state tensor of a block's output (a bare tensor in transformers 5, else a tuple's first)."""
    return output if isinstance(output, Tensor) else output[0]


def with_block_output(output: Tensor | tuple, hidden: Tensor) -> Tensor | tuple:
    """``output`` with its hidden state replaced by ``hidden``, in the same form (tensor or tuple)."""
    return hidden if isinstance(output, Tensor) else (hidden, *output[1:])


@contextmanager
def hooked(hooks: dict[nn.Module, ForwardHook]) -> Iterator[None]:
    """Register forward hooks for the duration of a ``with`` block and remove exactly those on exit.

    Args:
        hooks: module -> forward hook.
    """
    handles = []
    try:
        for module, hook in hooks.items():
            handles.append(module.register_forward_hook(hook))
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def capture_block_outputs(
    model: nn.Module, layers: list[int], stop_after_last: bool = True
) -> Iterator[dict[int, Tensor]]:
    """Record the outputs of the given blocks during a forward pass.

    Args:
        model: the model.
        layers: block indices to record (non-empty; negative indices are refused).
        stop_after_last: raise `StopForward` inside the deepest block's hook so nothing later is
            computed (`utils.activations.run_capturing` swallows it).

    Yields:
        dict block index -> output tensor [batch, seq, d_model], filled during the forward pass.

    Raises:
        ValueError: for an empty ``layers`` or an index that is not a block.
    """
    blocks = get_layers(model)
    layers = check_block_indices(model, layers)
    deepest = max(layers)
    store: dict[int, Tensor] = {}

    def make_hook(i: int) -> ForwardHook:
        def hook(module, inputs, output):
            store[i] = block_output(output)
            if stop_after_last and i == deepest:
                raise StopForward

        return hook

    with hooked({blocks[i]: make_hook(i) for i in sorted(set(layers))}):
        yield store


BLOCK_PARTS = ("block", "attention", "mlp")  # what `capture_block_parts` records


@contextmanager
def capture_block_parts(model: nn.Module, layer: int, stop_after: bool = True) -> Iterator[dict[str, Tensor]]:
    """Record one block's output and what its attention and its MLP wrote, during a forward pass.

    ``"attention"`` is the output of the block's ``self_attn`` module and ``"mlp"`` that of its ``mlp``
    module, before they join the residual stream: on Llama and Qwen2 the block output is its input plus the
    two, on Gemma 2 each is normalised first (its post-attention and post-feedforward norms).

    Args:
        model: the model.
        layer: the block index.
        stop_after: raise `StopForward` once the block has run, so nothing later is computed (catch it
            around the model call, or use `utils.activations.run_capturing`'s way).

    Yields:
        dict "block" / "attention" / "mlp" -> tensor [batch, seq, d_model], filled during the forward pass.

    Raises:
        ValueError: for an index that is not a block.
    """
    (layer,) = check_block_indices(model, [layer])
    block = get_layers(model)[layer]
    store: dict[str, Tensor] = {}

    def keep(name: str) -> ForwardHook:
        def hook(module, inputs, output):
            store[name] = block_output(output)
            if name == "block" and stop_after:
                raise StopForward

        return hook

    attention, mlp = block.get_submodule("self_attn"), block.get_submodule("mlp")
    with hooked({attention: keep("attention"), mlp: keep("mlp"), block: keep("block")}):
        yield store


class RowsInPass:
    """Which caller rows the current forward pass holds (``rows[i]`` for batch row ``i``); the decoding
    loop updates ``rows`` as finished rows leave the batch."""

    def __init__(self, rows: Tensor):
        self.rows = rows


_ROWS: ContextVar[RowsInPass | None] = ContextVar("rows_in_pass", default=None)


@contextmanager
def rows_in_pass(rows: Tensor) -> Iterator[RowsInPass]:
    """Tell row-aware hooks (`utils.steering.RowSteerer`) which caller rows the passes inside hold.

    Args:
        rows: the caller's row index of each batch row [batch] (update ``.rows`` of the yielded
            record when the batch shrinks).
    """
    state = RowsInPass(rows)
    token = _ROWS.set(state)
    try:
        yield state
    finally:
        _ROWS.reset(token)


def current_rows() -> Tensor | None:
    """The caller rows of the running pass, or None outside `rows_in_pass` (batch row i is row i)."""
    state = _ROWS.get()
    return None if state is None else state.rows


_ROW_COUNT: ContextVar[int | None] = ContextVar("caller_row_count", default=None)


@contextmanager
def caller_row_count(n: int) -> Iterator[None]:
    """Tell row-aware hooks how many caller rows (conversations) the passes inside serve in all, so a hook
    with settings for more rows than that can say so (`utils.generation.generate_replies` sets it).

    Args:
        n: the number of caller rows.
    """
    token = _ROW_COUNT.set(n)
    try:
        yield
    finally:
        _ROW_COUNT.reset(token)


def current_row_count() -> int | None:
    """The caller rows in all (`caller_row_count`), or None when no caller said."""
    return _ROW_COUNT.get()


_PREFIX_PASS: ContextVar[bool] = ContextVar("prefix_pass", default=False)


@contextmanager
def prefix_pass() -> Iterator[None]:
    """Mark the forward passes inside as passes over shared prompt prefixes (`utils.prefill`).

    Such a pass never holds a row's last prompt token, and its batch rows are distinct prefixes, not
    the caller's rows. A hook that acts only at the last position of each pass (a steerer at
    ``positions="response"``) does nothing there, which is what it does to those tokens in one full pass:
    it says so with `prefix_safe`, checks `in_prefix_pass`, and then leaves sharing on.
    """
    token = _PREFIX_PASS.set(True)
    try:
        yield
    finally:
        _PREFIX_PASS.reset(token)


def in_prefix_pass() -> bool:
    """True inside `prefix_pass`: the running pass covers shared prompt prefixes only."""
    return _PREFIX_PASS.get()


def prefix_safe(hook: Callable) -> bool:
    """True for a hook whose owner declares ``prefix_safe`` (it leaves `prefix_pass` passes alone)."""
    return bool(getattr(getattr(hook, "__self__", hook), "prefix_safe", False))


def has_prefix_unsafe_hooks(model: nn.Module) -> bool:
    """True when any user hook on the model would change a shared-prefix pass (see `prefix_pass`)."""
    return any(is_user_hook(hook) and not prefix_safe(hook) for module in model.modules() for hook in _hooks_of(module))


def is_user_hook(hook: Callable) -> bool:
    """False for the hooks transformers installs itself (on first use of output_hidden_states)."""
    return not getattr(hook, "__module__", "").startswith("transformers")


def _hooks_of(module: nn.Module) -> list[Callable]:
    return [*module._forward_hooks.values(), *module._forward_pre_hooks.values()]


def has_user_hooks(model: nn.Module) -> bool:
    """True when any submodule has a forward or pre-forward hook that transformers did not install."""
    return any(is_user_hook(hook) for module in model.modules() for hook in _hooks_of(module))


def user_hook_counts(model: nn.Module) -> dict[str, int]:
    """Per submodule name: its forward and pre-forward hooks, not counting transformers' own."""
    return {name: sum(map(is_user_hook, _hooks_of(module))) for name, module in model.named_modules()}


@contextmanager
def hooks_restored(models: Iterable[nn.Module]) -> Iterator[None]:
    """Put the models' hooks back as they were on exit: remove the user hooks added inside (never
    transformers' own) and restore any removed (e.g. by clearing a hook dict wholesale)."""
    saved = [{m: (dict(m._forward_hooks), dict(m._forward_pre_hooks)) for m in model.modules()} for model in models]
    try:
        yield
    finally:
        for snapshot in saved:
            for module, (post, pre) in snapshot.items():
                for current, before in ((module._forward_hooks, post), (module._forward_pre_hooks, pre)):
                    for key in set(current) - set(before):
                        if is_user_hook(current[key]):
                            del current[key]
                    for key, hook in before.items():
                        current.setdefault(key, hook)
