"""Generation ends after the house answer's `Source:` line: the stopping criterion on the real SmolLM2 tokenizer, and
`generation`'s bookkeeping (new-token count, kept text) around a scripted model."""

import json
from pathlib import Path

import pytest
import torch

from ragft.generation import decoding as generation
from ragft.generation.decoding import answer_end_stop, cut_after_answer, end_of_answer, end_of_source_line

HOUSE = Path(__file__).resolve().parent.parent / "data" / "train" / "house_style.jsonl"
RAMBLE = "\n\nAnswer: `np.flipud`: Reverse the order along axis 0.\n```python\nnp.flipud(A)\n```\nSource: numpy.flipud"


@pytest.fixture(scope="module")
def tok():
    from transformers import AutoTokenizer

    from ragft.generation.models import ensure_converted

    return AutoTokenizer.from_pretrained(ensure_converted("smollm2-135m"))


def house_answers(n=5):
    rows = [json.loads(line) for line in HOUSE.read_text().splitlines()[:60]]
    answers = [r["completion"] for r in rows if r["kind"] == "answer"][:n - 1]
    return answers + [next(r["completion"] for r in rows if r["kind"] == "abstain")]


def test_source_line_end_found_only_when_complete():
    assert end_of_source_line("Answer: x\nSource: numpy.sort") is None  # the line may still grow
    assert end_of_source_line("Answer: x\nSource:\n") is None  # no doc id yet
    text = "Answer: x\nSource: numpy.sort, numpy.argsort\nAnswer: again"
    assert text[:end_of_source_line(text)] == "Answer: x\nSource: numpy.sort, numpy.argsort\n"
    assert cut_after_answer(text) == "Answer: x\nSource: numpy.sort, numpy.argsort"
    assert cut_after_answer("no source line here") == "no source line here"


def test_a_reply_not_in_the_house_format_ends_at_its_first_blank_line():
    ramble = "The replacement is `np.inf`.\n\nThe replacement is `np.inf`.\n\nThe replacement"
    assert ramble[:end_of_answer(ramble)] == "The replacement is `np.inf`.\n"
    assert cut_after_answer(ramble) == "The replacement is `np.inf`."
    assert end_of_answer("\n\nThe replacement") is None  # leading blank lines are not an end
    assert end_of_answer("Answer: x\n\n```python\nx\n```\n") is None  # a house answer ends only at its Source line


@pytest.mark.parametrize("i", range(5))
def test_a_house_answer_stops_right_after_its_source_line(tok, i):
    answer = house_answers()[i]
    prompt = tok("<|im_start|>user\nq<|im_end|>\n", add_special_tokens=False)["input_ids"]
    new = tok(answer + RAMBLE, add_special_tokens=False)["input_ids"]
    stop = answer_end_stop(tok, len(prompt))
    ids = torch.tensor([prompt])
    for t in new:  # feed the tokens one decode step at a time, as generate() does
        ids = torch.cat([ids, torch.tensor([[t]])], dim=1)
        if bool(stop(ids, None)[0]):
            break
    else:
        pytest.fail("never stopped")
    step = ids.shape[1] - len(prompt)
    kept = tok.decode(new[:step])
    assert kept.rstrip("\n") == answer  # not one token early (the Source line complete) nor later (nothing after it)
    assert stop.stopped_at == {0: step}


class ScriptedModel:
    """Stands in for a causal LM: 'generates' fixed token rows, calling the stopping criteria after each step."""

    device = torch.device("cpu")

    def __init__(self, rows, vocab):
        self.rows, self.vocab = rows, vocab

    def generate(self, input_ids, attention_mask, max_new_tokens, stopping_criteria=None, pad_token_id=None, **kw):
        seq, done, logits = input_ids, torch.zeros(len(self.rows), dtype=torch.bool), []
        for step in range(max_new_tokens):
            col = torch.tensor([[r[step] if step < len(r) and not d else pad_token_id]
                                for r, d in zip(self.rows, done.tolist(), strict=True)])
            seq = torch.cat([seq, col], dim=1)
            logits.append(torch.zeros(len(self.rows), self.vocab))
            if stopping_criteria is not None:
                done |= stopping_criteria[0](seq, None)
            if bool(done.all()):
                break
        return type("Out", (), {"sequences": seq, "logits": tuple(logits)})()


@pytest.mark.parametrize("stop", [True, False])
def test_batch_rows_keep_their_answer_and_count_only_their_tokens(tok, stop):
    answers = house_answers(2)  # one answer, one abstention: different lengths in one batch
    rows = [tok(a + RAMBLE, add_special_tokens=False)["input_ids"] for a in answers]
    prompt = torch.tensor([[1, 2, 3]] * 2)
    gens = generation._generate_ids(ScriptedModel(rows, len(tok)), tok, prompt, torch.ones_like(prompt), 200,
                                    do_sample=False, stop_at_answer_end=stop)
    for a, row, g in zip(answers, rows, gens, strict=True):
        if stop:
            assert g.text == a
            assert g.n_new_tokens == len(tok(a + "\n", add_special_tokens=False)["input_ids"])
        else:  # today's behaviour: the ramble is kept
            assert g.text == (a + RAMBLE).strip()
            assert g.n_new_tokens == len(row) + 1  # its end-of-turn token counts, as a real model's EOS does


def test_the_stop_is_part_of_the_decoding_the_caches_key_on():
    assert generation.DECODING["stop_at_answer_end"] is generation.STOP_AT_ANSWER_END


def test_the_default_cap_holds_nine_in_ten_house_answers(tok):
    """max_new_tokens is a cap for answers that never end; it must not cut the house answers the tuned arms learn."""
    from ragft.core import profiles

    rows = [json.loads(line) for line in HOUSE.read_text().splitlines()]
    lengths = [len(tok(r["completion"], add_special_tokens=False)["input_ids"]) + 1 for r in rows]  # + end of turn
    share = sum(n <= profiles.ANSWER_MAX_NEW_TOKENS for n in lengths) / len(lengths)
    assert share >= 0.9, f"only {share:.0%} of house answers fit {profiles.ANSWER_MAX_NEW_TOKENS} tokens"
    assert share < 1.0  # ... and no more than needed: the longest answers are outliers, not the norm
    assert profiles.get("workshop").max_new_tokens == profiles.ANSWER_MAX_NEW_TOKENS
