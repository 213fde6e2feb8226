"""Text generation with the chat template, greedy by default, timed (time to first token, tokens per second).

The RAG prompt builder and pipeline live here too (added in notebooks/03_rag.ipynb). This module does not retrieve
(see `index.py`) and does not train (see `finetune.py`).
Introduced in notebooks/00_overview.ipynb.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .house import ABSTAIN_ANSWER

# The instruction that TELLS a model the house format. The fine-tuned arm is trained to follow it WITHOUT this prompt.
HOUSE_SYSTEM_PROMPT = (
    "You are a NumPy migration assistant. Reply in exactly this format:\n"
    "Answer: <one sentence>\n```python\n<a short code example>\n```\nSource: <doc ids you used>\n"
    f"If the documentation does not cover the question, reply exactly:\n{ABSTAIN_ANSWER}"
)
PLAIN_SYSTEM_PROMPT = "You are a helpful assistant."


@dataclass
class Generation:
    """One generated answer and how long it took."""

    text: str
    n_prompt_tokens: int
    n_new_tokens: int
    ttft_s: float  # time to first token: prefill + first decode step
    total_s: float

    @property
    def tokens_per_s(self) -> float:
        decode = self.total_s - self.ttft_s
        return (self.n_new_tokens - 1) / decode if self.n_new_tokens > 1 and decode > 0 else float("nan")


class _FirstTokenTimer:
    """A transformers streamer that only notes when the first new token arrives (generate() calls put() with the prompt first)."""

    def __init__(self):
        self.calls, self.first = 0, None

    def put(self, value):
        self.calls += 1
        if self.calls == 2 and self.first is None:
            self.first = time.perf_counter()

    def end(self):
        pass


def chat_messages(question: str, system: str | None = None) -> list[dict]:
    msgs = [{"role": "system", "content": system}] if system else []
    return msgs + [{"role": "user", "content": question}]


def encode_chat(tok, messages: list[dict], max_prompt_tokens: int | None = None):
    """Token ids of the chat-formatted prompt (with the assistant turn opened). Truncates from the left if too long."""
    ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]
    if max_prompt_tokens and ids.shape[1] > max_prompt_tokens:
        ids = ids[:, -max_prompt_tokens:]
    return ids


def generate(model, tok, messages: list[dict], max_new_tokens: int = 80, do_sample: bool = False,
             max_prompt_tokens: int | None = None) -> Generation:
    """Generate one reply, greedy unless `do_sample`; returns the text and its timings."""
    import torch

    if not messages or not str(messages[-1].get("content", "")).strip():
        raise ValueError("empty question: type a question to answer")
    ids = encode_chat(tok, messages, max_prompt_tokens).to(model.device)
    timer = _FirstTokenTimer()
    t0 = time.perf_counter()
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                             do_sample=do_sample, streamer=timer, pad_token_id=tok.pad_token_id,
                             repetition_penalty=1.1 if not do_sample else None)
    total = time.perf_counter() - t0
    new = out[0, ids.shape[1]:]
    text = tok.decode(new, skip_special_tokens=True).strip()
    ttft = (timer.first - t0) if timer.first else total
    return Generation(text=text, n_prompt_tokens=int(ids.shape[1]), n_new_tokens=int(new.shape[0]), ttft_s=ttft, total_s=total)
