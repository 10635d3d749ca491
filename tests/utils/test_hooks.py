"""utils.hooks: block outputs in both forms, hooks that remove themselves, capture, and whose hooks are whose."""

from __future__ import annotations

import pytest
import torch

from utils.hooks import (
    StopForward,
    block_output,
    capture_block_outputs,
    capture_block_parts,
    current_rows,
    has_prefix_unsafe_hooks,
    has_user_hooks,
    hooked,
    hooks_restored,
    in_prefix_pass,
    prefix_pass,
    prefix_safe,
    rows_in_pass,
    user_hook_counts,
    with_block_output,
)
from utils.layers import get_layers


def test_block_output_reads_and_replaces_a_tensor_or_a_tuple_in_the_form_it_came():
    hidden, extra = torch.randn(2, 3, 4), torch.randn(1)
    assert block_output(hidden) is hidden
    assert block_output((hidden, extra)) is hidden
    new = torch.zeros(2, 3, 4)
    assert with_block_output(hidden, new) is new
    replaced = with_block_output((hidden, extra), new)
    assert isinstance(replaced, tuple) and replaced[0] is new and replaced[1] is extra


def _ids(tokenizer, text="hello there"):
    return tokenizer(text, return_tensors="pt")["input_ids"]


def test_capture_equals_hidden_states_and_leaves_no_hook_behind(tiny_models):
    model, tokenizer = tiny_models["tiny-qwen2"]
    ids = _ids(tokenizer)
    with torch.no_grad():
        reference = model(ids, output_hidden_states=True).hidden_states
        with capture_block_outputs(model, [0, 2], stop_after_last=False) as store:
            model(ids)
    assert sorted(store) == [0, 2]
    for i in (0, 2):  # hidden_states[i + 1] is block i's output (not the last block: it is after the norm)
        torch.testing.assert_close(store[i], reference[i + 1])
    assert not has_user_hooks(model)


def test_capture_stops_after_the_deepest_block_and_refuses_indices_that_are_not_blocks(tiny_models):
    model, tokenizer = tiny_models["tiny-llama"]
    calls = []
    last = get_layers(model)[-1]
    with hooked({last: lambda module, inputs, output: calls.append(1)}):
        with pytest.raises(StopForward), capture_block_outputs(model, [1]) as store, torch.no_grad():
            model(_ids(tokenizer))
    assert 1 in store and calls == [], "the blocks after the deepest captured one must not run"
    with pytest.raises(ValueError), capture_block_outputs(model, [len(get_layers(model))]):
        pass
    assert not has_user_hooks(model)


def test_hooked_removes_its_hooks_even_when_the_block_raises(tiny_models):
    model, tokenizer = tiny_models["tiny-qwen2"]
    block = get_layers(model)[1]

    def double(module, inputs, output):
        return with_block_output(output, 2 * block_output(output))

    with torch.no_grad():
        plain = model(_ids(tokenizer)).logits
        with hooked({block: double}):
            changed = model(_ids(tokenizer)).logits
            assert user_hook_counts(model)["model.layers.1"] == 1
        assert not torch.allclose(plain, changed), "the hook's replacement output must reach the logits"
        with pytest.raises(RuntimeError, match="inside"), hooked({block: double}):
            raise RuntimeError("inside")
    assert not has_user_hooks(model)


def test_transformers_own_hooks_are_not_user_hooks_and_survive_hooks_restored(tiny_models):
    model, tokenizer = tiny_models["tiny-gemma2"]
    with torch.no_grad():
        model(_ids(tokenizer), output_hidden_states=True)  # transformers installs its recording hooks
    before = {name: dict(m._forward_hooks) for name, m in model.named_modules()}
    assert not has_user_hooks(model)
    with hooks_restored([model]):
        get_layers(model)[0].register_forward_hook(lambda *args: None)
        assert has_user_hooks(model)
        for module in model.modules():
            module._forward_hooks.clear()  # wholesale: also transformers' own
    assert {name: dict(m._forward_hooks) for name, m in model.named_modules()} == before
    with torch.no_grad():
        states = model(_ids(tokenizer), output_hidden_states=True).hidden_states
    assert len(states) == len(get_layers(model)) + 1


def test_rows_in_pass_and_prefix_pass_are_seen_inside_only():
    assert current_rows() is None and not in_prefix_pass()
    with rows_in_pass(torch.tensor([2, 0])) as state:
        assert current_rows().tolist() == [2, 0]
        state.rows = torch.tensor([0])
        assert current_rows().tolist() == [0]
        with prefix_pass():
            assert in_prefix_pass()
        assert not in_prefix_pass()
    assert current_rows() is None


def test_prefix_safety_is_what_the_hook_owner_declares(tiny_models):
    model, _ = tiny_models["tiny-qwen2"]

    class Safe:
        prefix_safe = True

        def hook(self, module, inputs, output):
            return None

    def unsafe(module, inputs, output):
        return None

    assert prefix_safe(Safe().hook) and not prefix_safe(unsafe)
    block = get_layers(model)[0]
    with hooked({block: Safe().hook}):
        assert has_user_hooks(model) and not has_prefix_unsafe_hooks(model)
        with hooked({block: unsafe}):
            assert has_prefix_unsafe_hooks(model)


def test_block_parts_add_up_to_the_block_and_stop_after_it(tiny_models):
    """On Qwen2 a block's output is its input plus what attention and the MLP wrote; nothing later runs."""
    model, tokenizer = tiny_models["tiny-qwen2"]
    ids = _ids(tokenizer)
    with torch.no_grad():
        with capture_block_outputs(model, [0, 1], stop_after_last=False) as blocks:
            model(ids)
        calls = []
        with hooked({get_layers(model)[2]: lambda module, inputs, output: calls.append(1)}):
            with pytest.raises(StopForward), capture_block_parts(model, 1) as parts:
                model(ids)
    assert sorted(parts) == ["attention", "block", "mlp"] and not calls
    torch.testing.assert_close(parts["block"], blocks[1])
    torch.testing.assert_close(parts["block"], blocks[0] + parts["attention"] + parts["mlp"])
    assert not torch.allclose(parts["attention"], parts["mlp"])
    assert not has_user_hooks(model)
    with pytest.raises(ValueError):
        with capture_block_parts(model, 99):
            pass
