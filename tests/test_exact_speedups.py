"""Exact speed-ups keep greedy answers as they were: prompt-lookup decoding (`generation.PROMPT_LOOKUP_TOKENS`) gives
the same text, token count and stop point as plain decoding, and stays off where it cannot run (batches, contrast)."""

import pytest

from ragft.generation import decoding as generation

PASSAGE = ("<passage n=1 doc_id=\"removed:numpy.float_\">\nnumpy.float_ was removed in NumPy 2.0. Use `np.float64` "
           "instead: it is the same 64-bit float type.\n\nThe alias numpy.float_ existed for backwards compatibility.\n"
           "</passage>\n\n")
EXAMPLE = ("Example:\nQuestion: What replaces np.float_?\nAnswer: Use `np.float64` instead.\n"
           "Source: removed:numpy.float_\n\n")
CHATS = [
    # the reply copies the example (drafts accepted) and its end falls inside an accepted draft
    generation.chat_messages(PASSAGE + EXAMPLE + "Question: What replaces np.float_?"),
    generation.chat_messages(PASSAGE + EXAMPLE + "Question: In NumPy 2, what should I use instead of np.float_?",
                             generation.RAG_SYSTEM_PROMPT),
    generation.chat_messages("What is 2 + 2?"),
]


def test_the_answer_end_stop_finds_the_end_among_several_new_tokens(small_tokenizer):
    """Prompt lookup appends several tokens per step: the stop must cut where one-token-at-a-time decoding stops."""
    import torch

    tok, prompt = small_tokenizer, [1, 2, 3]
    new = tok("Answer: Use `np.float64`.\nSource: removed:numpy.float_\nAnswer: again and again",
              add_special_tokens=False)["input_ids"]
    one = generation.answer_end_stop(tok, len(prompt))
    for end in range(1, len(new) + 1):
        if one(torch.tensor([prompt + new[:end]]), None)[0]:
            break
    at_once = generation.answer_end_stop(tok, len(prompt))
    assert bool(at_once(torch.tensor([prompt + new]), None)[0])
    assert at_once.stopped_at == one.stopped_at == {0: end}
    assert tok.decode(new[:end]).endswith("Source: removed:numpy.float_\n")
    in_two = generation.answer_end_stop(tok, len(prompt))  # the end inside the second of two steps
    assert not in_two(torch.tensor([prompt + new[:3]]), None)[0]
    assert bool(in_two(torch.tensor([prompt + new]), None)[0]) and in_two.stopped_at == {0: end}


def _passes(model):
    """A counter of the model's forward passes (a forward hook), removed on exit."""
    import contextlib

    @contextlib.contextmanager
    def counting():
        count = [0]
        handle = model.register_forward_hook(lambda *_: count.__setitem__(0, count[0] + 1))
        try:
            yield count
        finally:
            handle.remove()

    return counting()


@pytest.mark.slow
def test_prompt_lookup_gives_the_same_answers_in_fewer_forward_passes(small_llm):
    model, tok = small_llm
    for i, chat in enumerate(CHATS):
        plain = generation.generate(model, tok, chat, max_new_tokens=48, prompt_lookup=0)
        with _passes(model) as passes:
            lookup = generation.generate(model, tok, chat, max_new_tokens=48, prompt_lookup=10)
        assert lookup.text == plain.text
        assert lookup.n_new_tokens == plain.n_new_tokens
        assert lookup.mean_logprob == pytest.approx(plain.mean_logprob, abs=1e-3)
        if i == 0:  # the copied example: drafts accepted, so fewer passes than tokens
            assert "Answer: Use `np.float64` instead." in plain.text, "the reply no longer copies: pick another prompt"
            assert passes[0] < plain.n_new_tokens


@pytest.mark.slow
def test_prompt_lookup_stays_off_in_batches_and_beside_contrast(small_llm, monkeypatch):
    """transformers runs prompt lookup on one chat only, and context-aware decoding runs forward passes of its own:
    both paths answer as they did without it, and do not fail."""
    model, tok = small_llm
    monkeypatch.setattr(generation, "PROMPT_LOOKUP_TOKENS", 10)
    batched = generation.generate_batch(model, tok, CHATS[:2], max_new_tokens=24)
    monkeypatch.setattr(generation, "PROMPT_LOOKUP_TOKENS", 0)
    assert [g.text for g in batched] == [g.text for g in generation.generate_batch(model, tok, CHATS[:2],
                                                                                   max_new_tokens=24)]
    plain_chat = generation.chat_messages("Question: In NumPy 2, what should I use instead of np.float_?",
                                          generation.RAG_SYSTEM_PROMPT)
    with _passes(model) as passes:
        cad = generation.generate(model, tok, CHATS[1], max_new_tokens=24, contrast=plain_chat, contrast_alpha=0.5,
                                  prompt_lookup=10)
    assert cad.text == generation.generate(model, tok, CHATS[1], max_new_tokens=24, contrast=plain_chat,
                                           contrast_alpha=0.5, prompt_lookup=0).text
    assert passes[0] >= cad.n_new_tokens  # one pass per token (and the contrast's own): no drafts were checked
