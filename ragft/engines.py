"""An optional fast CPU engine for batch answering: CTranslate2 (PyPI `ctranslate2`, extra `fast`), plugged in behind
`systems.ModelPool(engine="ct2")`. A model (the base, or an adapter merged into it with `adapters.merge_adapter`) is
converted once and cached under `cache_dir("ct2")`, keyed by the sha256 of its weights; a cached conversion that is
half-written or whose files no longer match the hashes recorded when it was written is rebuilt.

It does not train and does not switch adapters live (each adapter is merged and converted once): training and the
dashboard's adapter switch stay on transformers. It is not the default: see the README's "Generation speed" for the
measurement that decided it. Decoding is `generation.DECODING`'s (greedy, the same repetition penalty, the same stop
at the end of the answer), so only the runtime differs. When the engine is not installed or a model cannot be converted,
`EngineUnavailable` says why and the caller answers with transformers.
Introduced in benchmarks/generation.py.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from . import generation
from .cache import locked
from .generation import REPETITION_PENALTY, STOP_AT_ANSWER_END, Generation, end_of_answer
from .io import atomic_path
from .paths import cache_dir

ENGINES = ("transformers", "ct2")
CT2_QUANTIZATION = "int8"  # the measurement: int8 2.0x fp32 transformers on short prompts; float32 1.4x
MARKER = "RAGFT_CT2.json"  # written last: a folder without it (or with other hashes) is half-written or stale


class EngineUnavailable(RuntimeError):
    """The fast engine cannot serve this model: not installed, or the conversion failed. Callers fall back."""


def _files_sha256(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.is_file() and p.name != MARKER}


def is_complete(folder: Path, weights_sha256: str, quantization: str) -> bool:
    """True if `folder` holds a finished conversion of exactly these weights: its marker names them and every file
    still has the hash recorded when the conversion finished."""
    marker = folder / MARKER
    if not marker.exists():
        return False
    try:
        meta = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return (meta.get("weights_sha256") == weights_sha256 and meta.get("quantization") == quantization
            and meta.get("files") == _files_sha256(folder))


def ct2_convert(src: Path, dst: Path, quantization: str) -> None:
    """Convert a saved transformers checkpoint (safetensors folder) with CTranslate2's own converter."""
    try:
        from ctranslate2.converters import TransformersConverter
    except ImportError as e:
        raise EngineUnavailable(f"ctranslate2 is not installed ({e}); pip install 'ragft[fast]'") from e
    TransformersConverter(str(src)).convert(str(dst), quantization=quantization, force=True)


def converted(model, tok, quantization: str = CT2_QUANTIZATION, folder: str | Path | None = None,
              convert: Callable[[Path, Path, str], None] = ct2_convert) -> Path:
    """The CTranslate2 conversion of `model` (a plain transformers model: merge adapters first), built once per weights.

    Keyed by `generation.weights_checksum(model)`; a folder that is half-written or does not match is removed and
    rebuilt. Any failure of the conversion becomes `EngineUnavailable` with the reason.
    """
    key = generation.weights_checksum(model)
    out = Path(folder or cache_dir("ct2")) / f"{key[:16]}-{quantization}"
    out.parent.mkdir(parents=True, exist_ok=True)
    with locked(out.with_name(out.name + ".lock")):
        if is_complete(out, key, quantization):
            return out
        if out.exists():
            shutil.rmtree(out)  # half-written by an interrupted conversion, or its files changed since
        try:
            with atomic_path(out, is_dir=True) as tmp, tempfile.TemporaryDirectory() as src:
                model.save_pretrained(src)
                tok.save_pretrained(src)
                convert(Path(src), tmp, quantization)
                meta = {"weights_sha256": key, "quantization": quantization, "files": _files_sha256(tmp)}
                (tmp / MARKER).write_text(json.dumps(meta, indent=1))
        except EngineUnavailable:
            raise
        except Exception as e:  # an architecture the converter does not know, a full disk, ...
            raise EngineUnavailable(f"CTranslate2 could not convert the model: {type(e).__name__}: {e}") from e
    return out


class Ct2Generator:
    """Greedy answers to chat prompts with a converted model: the `systems.generate_chats` contract, per-batch timings."""

    def __init__(self, folder: str | Path, tok, threads: int | None = None):
        """threads: CPU threads (None: as many as torch uses, so that both runtimes are compared on equal terms)."""
        try:
            import ctranslate2
        except ImportError as e:
            raise EngineUnavailable(f"ctranslate2 is not installed ({e}); pip install 'ragft[fast]'") from e
        import torch

        self.tok = tok
        self.generator = ctranslate2.Generator(str(folder), device="cpu",
                                               intra_threads=threads or torch.get_num_threads())

    def _batch(self, chats: list[list[dict]], max_new_tokens: int, stop_at_answer_end: bool) -> list[Generation]:
        tok = self.tok
        prompts = [tok.apply_chat_template(m, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
                   for m in chats]
        new_ids: list[list[int]] = [[] for _ in chats]
        logprobs: list[list[float]] = [[] for _ in chats]
        first: list[float] = []

        def step(r) -> bool:  # called per generated token; True ends that row (the stop at the end of the answer)
            if not first:
                first.append(time.perf_counter())
            new_ids[r.batch_id].append(r.token_id)
            if r.log_prob is not None:
                logprobs[r.batch_id].append(r.log_prob)
            if stop_at_answer_end and "\n" in tok.decode([r.token_id]):
                return end_of_answer(tok.decode(new_ids[r.batch_id], skip_special_tokens=True)) is not None
            return False

        t0 = time.perf_counter()
        self.generator.generate_batch([tok.convert_ids_to_tokens(p) for p in prompts], max_length=max_new_tokens,
                                      sampling_topk=1, beam_size=1, repetition_penalty=REPETITION_PENALTY or 1.0,
                                      include_prompt_in_result=False, end_token=tok.eos_token, callback=step)
        total = time.perf_counter() - t0
        ttft = (first[0] - t0) if first else total
        out = []
        for ids, lps, p in zip(new_ids, logprobs, prompts, strict=True):
            text = tok.decode(ids, skip_special_tokens=True).strip()
            out.append(Generation(
                text=generation.cut_after_answer(text) if stop_at_answer_end else text, n_prompt_tokens=len(p),
                n_new_tokens=len(ids), ttft_s=ttft, total_s=total,
                mean_logprob=sum(lps) / len(lps) if lps else None, batch_size=len(chats)))
        return out

    def generate_chats(self, batch: list[list[dict]], max_new_tokens: int, batch_size: int = 1,
                       stop_at_answer_end: bool = STOP_AT_ANSWER_END) -> list[Generation]:
        """Replies to `batch`, `batch_size` chats per CTranslate2 call.

        batch_size defaults to 1 and `ModelPool` passes 1: CTranslate2 forwards a batch's prompts at once only up to the
        shortest one and feeds the rest one decode step at a time, so ragged RAG prompts (~600 tokens) were slower
        batched (measured: 0.12 answers/s at 8 vs 0.28 one by one, SmolLM2-135M int8, one thread).
        """
        if any(not m or not str(m[-1].get("content", "")).strip() for m in batch):
            raise ValueError("empty question in the batch: every chat needs a non-empty last message")
        out: list[Generation] = []
        for start in range(0, len(batch), batch_size):
            out += self._batch(batch[start:start + batch_size], max_new_tokens, stop_at_answer_end)
        return out
