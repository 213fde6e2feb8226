"""Optional fast CPU engines for batch answering: CTranslate2 (PyPI `ctranslate2`, extra `fast`), plugged in behind
`pool.ModelPool(engine="ct2")`, and ONNX Runtime GenAI (PyPI `onnxruntime-genai` and `onnx-ir`, which its model
builder imports), behind `ModelPool(engine="ortgenai")`. A model (the base, or an adapter merged into it with
`adapters.merge_adapter`) is converted once and cached under `cache_dir("ct2")` (`cache_dir("ortgenai")`), keyed by
the sha256 of its weights; a cached conversion that is half-written or whose files no longer match the hashes recorded when it was written is rebuilt.

It does not train and does not switch adapters live (each adapter is merged and converted once): training and the
dashboard's adapter switch stay on transformers. It is not the default: see the README's "Generation speed" for the
measurement that decided it. Decoding is `generation.DECODING`'s (greedy, the same repetition penalty, the same stop
at the end of the answer, the same ban on an n-gram repeated within the answer), so only the runtime differs. CTranslate2
cannot restrict its n-gram ban to the answer's tokens, so while `generation.ANSWER_NO_REPEAT_NGRAM` is on it refuses
(`EngineUnavailable`) rather than write other text. When the engine is not installed or a model cannot be converted,
`EngineUnavailable` says why and the caller answers with transformers.
Introduced in benchmarks/generation.py.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ..core.cache import locked
from ..core.io import atomic_path
from ..core.paths import cache_dir
from . import decoding as generation
from .decoding import REPETITION_PENALTY, STOP_AT_ANSWER_END, Generation, banned_next, end_of_answer

ENGINES = ("transformers", "ct2", "ortgenai")  # ModelPool's
ORTGENAI_POOL_PRECISION = "fp32"  # the README's measurement: fp32 writes transformers' text, int4 broke this model
CT2_QUANTIZATION = "int8"  # the measurement: int8 2.0x fp32 transformers on short prompts; float32 1.4x
MARKER = "RAGFT_CT2.json"  # written last: a folder without it (or with other hashes) is half-written or stale
ORTGENAI_MARKER = "RAGFT_ORTGENAI.json"
ORTGENAI_PRECISIONS = ("fp32", "int4")  # the model builder's CPU precisions measured (int4: weight-only, RTN)


class EngineUnavailable(RuntimeError):
    """The fast engine cannot serve this model: not installed, or the conversion failed. Callers fall back."""


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _files_sha256(folder: Path, marker: str = MARKER) -> dict[str, str]:
    return {p.name: _sha256_file(p) for p in sorted(folder.iterdir()) if p.is_file() and p.name != marker}


def is_complete(folder: Path, weights_sha256: str, quantization: str, marker_name: str = MARKER) -> bool:
    """True if `folder` holds a finished conversion of exactly these weights: its marker names them and every file
    still has the hash recorded when the conversion finished."""
    marker = folder / marker_name
    if not marker.exists():
        return False
    try:
        meta = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return (meta.get("weights_sha256") == weights_sha256 and meta.get("quantization") == quantization
            and meta.get("files") == _files_sha256(folder, marker_name))


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
    return _converted(model, tok, quantization, Path(folder or cache_dir("ct2")), convert, MARKER, "CTranslate2")


def _converted(model, tok, quantization: str, root: Path, convert: Callable[[Path, Path, str], None],
               marker: str, label: str) -> Path:
    key = generation.weights_checksum(model)
    out = root / f"{key[:16]}-{quantization}"
    out.parent.mkdir(parents=True, exist_ok=True)
    with locked(out.with_name(out.name + ".lock")):
        if is_complete(out, key, quantization, marker):
            return out
        if out.exists():
            shutil.rmtree(out)  # half-written by an interrupted conversion, or its files changed since
        try:
            with atomic_path(out, is_dir=True) as tmp, tempfile.TemporaryDirectory() as src:
                model.save_pretrained(src)
                tok.save_pretrained(src)
                convert(Path(src), tmp, quantization)
                meta = {"weights_sha256": key, "quantization": quantization, "files": _files_sha256(tmp, marker)}
                (tmp / marker).write_text(json.dumps(meta, indent=1))
        except EngineUnavailable:
            raise
        except Exception as e:  # an architecture the converter does not know, a full disk, ...
            raise EngineUnavailable(f"{label} could not convert the model: {type(e).__name__}: {e}") from e
    return out


def check_decoding(engine: str) -> None:
    """Raise EngineUnavailable when `engine` cannot decode as `generation.DECODING` does: CTranslate2's
    no_repeat_ngram_size counts the prompt's tokens too (copying a passage would be banned), so it cannot apply the
    shared ban on an n-gram repeated within the answer (`generation.ANSWER_NO_REPEAT_NGRAM`)."""
    if engine != "ct2":
        return
    try:
        import ctranslate2  # noqa: F401  not installed: that is the message to give first
    except ImportError as e:
        raise EngineUnavailable(f"ctranslate2 is not installed ({e}); pip install 'ragft[fast]'") from e
    if generation.ANSWER_NO_REPEAT_NGRAM:
        raise EngineUnavailable(
            f"CTranslate2 cannot ban a repeated {generation.ANSWER_NO_REPEAT_NGRAM}-gram within the answer only "
            "(its no_repeat_ngram_size counts the prompt too), which the shared decoding does "
            "(generation.ANSWER_NO_REPEAT_NGRAM)")


def _prompt_ids(tok, chat: list[dict]) -> list[int]:
    return tok.apply_chat_template(chat, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]


def _answer_ended(tok, ids: list[int]) -> bool:
    """True when the last token generated ends a line that ends the answer (`generation.end_of_answer`)."""
    return "\n" in tok.decode(ids[-1:]) and end_of_answer(tok.decode(ids, skip_special_tokens=True)) is not None


def _generation(tok, ids: list[int], logprobs: list[float], prompt: list[int], stop_at_answer_end: bool, ttft: float,
                total: float, batch_size: int) -> Generation:
    """One reply of a fast engine as `generation.Generation`, cut at the answer's end as transformers' replies are."""
    text = tok.decode(ids, skip_special_tokens=True).strip()
    return Generation(text=generation.cut_after_answer(text) if stop_at_answer_end else text, n_prompt_tokens=len(prompt),
                      n_new_tokens=len(ids), ttft_s=ttft, total_s=total,
                      mean_logprob=sum(logprobs) / len(logprobs) if logprobs else None, batch_size=batch_size)


class Ct2Generator:
    """Greedy answers to chat prompts with a converted model: the `pool.generate_chats` contract, per-batch timings."""

    def __init__(self, folder: str | Path, tok, threads: int | None = None):
        """threads: CPU threads (None: as many as torch uses, so that both runtimes are compared on equal terms)."""
        check_decoding("ct2")  # installed, and able to decode as the shared setting does
        import ctranslate2
        import torch

        self.tok = tok
        self.generator = ctranslate2.Generator(str(folder), device="cpu",
                                               intra_threads=threads or torch.get_num_threads())

    def _batch(self, chats: list[list[dict]], max_new_tokens: int, stop_at_answer_end: bool) -> list[Generation]:
        tok = self.tok
        prompts = [_prompt_ids(tok, m) for m in chats]
        new_ids: list[list[int]] = [[] for _ in chats]
        logprobs: list[list[float]] = [[] for _ in chats]
        first: list[float] = []

        def step(r) -> bool:  # called per generated token; True ends that row (the stop at the end of the answer)
            if not first:
                first.append(time.perf_counter())
            new_ids[r.batch_id].append(r.token_id)
            if r.log_prob is not None:
                logprobs[r.batch_id].append(r.log_prob)
            return stop_at_answer_end and _answer_ended(tok, new_ids[r.batch_id])

        t0 = time.perf_counter()
        self.generator.generate_batch([tok.convert_ids_to_tokens(p) for p in prompts], max_length=max_new_tokens,
                                      sampling_topk=1, beam_size=1, repetition_penalty=REPETITION_PENALTY or 1.0,
                                      include_prompt_in_result=False, end_token=tok.eos_token, callback=step)
        total = time.perf_counter() - t0
        ttft = (first[0] - t0) if first else total
        return [_generation(tok, ids, lps, p, stop_at_answer_end, ttft, total, len(chats))
                for ids, lps, p in zip(new_ids, logprobs, prompts, strict=True)]

    def generate_chats(self, batch: list[list[dict]], max_new_tokens: int, batch_size: int = 1,
                       stop_at_answer_end: bool = STOP_AT_ANSWER_END) -> list[Generation]:
        """Replies to `batch`, `batch_size` chats per CTranslate2 call.

        batch_size defaults to 1 and `ModelPool` passes 1: CTranslate2 forwards a batch's prompts at once only up to the
        shortest one and feeds the rest one decode step at a time, so ragged RAG prompts (~600 tokens) were slower
        batched (measured: 0.12 answers/s at 8 vs 0.28 one by one, SmolLM2-135M int8, one thread).
        """
        generation.check_chats(batch)
        out: list[Generation] = []
        for start in range(0, len(batch), batch_size):
            out += self._batch(batch[start:start + batch_size], max_new_tokens, stop_at_answer_end)
        return out


# ONNX Runtime GenAI ----------------------------------------------------------------------------------------------

ORTGENAI_MISSING = "onnxruntime-genai is not installed ({}); pip install 'ragft[ortgenai]'"
# Greedy exactly as `generation.DECODING`: the builder's genai_config.json ships top_k 50 (unused without sampling),
# so every search option that could change the chosen token is set on each call rather than trusted from the file.
ORTGENAI_SEARCH = {"do_sample": False, "num_beams": 1, "top_k": 1, "top_p": 1.0, "temperature": 1.0,
                   "repetition_penalty": REPETITION_PENALTY or 1.0, "min_length": 0, "no_repeat_ngram_size": 0}


def _import_ortgenai():
    try:
        import onnxruntime_genai
    except ImportError as e:
        raise EngineUnavailable(ORTGENAI_MISSING.format(e)) from e
    return onnxruntime_genai


def ortgenai_convert(src: Path, dst: Path, precision: str) -> None:
    """Convert a saved transformers checkpoint with ONNX Runtime GenAI's model builder (offline, CPU, `precision`).

    Runs the builder in a subprocess (its module imports its own siblings by bare name) with its scratch folder in a
    temporary directory; its log is shown only when it fails."""
    _import_ortgenai()
    try:
        import onnx_ir  # noqa: F401  the builder's own dependency, not declared by the package
    except ImportError as e:
        raise EngineUnavailable(f"onnx-ir is not installed ({e}): ONNX Runtime GenAI's model builder needs it; "
                                "pip install 'ragft[ortgenai]'") from e
    if precision not in ORTGENAI_PRECISIONS:
        raise ValueError(f"precision must be one of {ORTGENAI_PRECISIONS}, not {precision!r}")
    with tempfile.TemporaryDirectory() as scratch:
        run = subprocess.run([sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(src), "-o", str(dst),
                              "-p", precision, "-e", "cpu", "-c", scratch],
                             capture_output=True, text=True, check=False)
    if run.returncode != 0:
        raise RuntimeError(f"model builder exited {run.returncode}: {(run.stderr or run.stdout)[-2000:]}")


def ortgenai_converted(model, tok, precision: str = "int4", folder: str | Path | None = None,
                       convert: Callable[[Path, Path, str], None] = ortgenai_convert) -> Path:
    """The ONNX Runtime GenAI conversion of `model`, built once per weights and precision under
    `cache_dir("ortgenai")`: same keying, atomic write and half-written detection as `converted`."""
    return _converted(model, tok, precision, Path(folder or cache_dir("ortgenai")), convert, ORTGENAI_MARKER,
                      "ONNX Runtime GenAI")


class OrtGenAIGenerator:
    """Greedy answers with an ONNX Runtime GenAI model: `Ct2Generator`'s interface (the `pool.generate_chats`
    contract, per-call timings). Prompts are tokenized by the transformers tokenizer, as on the other runtimes."""

    def __init__(self, folder: str | Path, tok, threads: int | None = None):
        """threads: CPU threads for ONNX Runtime (None: as many as torch uses, as for CTranslate2)."""
        og = _import_ortgenai()
        import torch

        config = og.Config(str(folder))
        config.overlay(json.dumps({"model": {"decoder": {"session_options": {
            "intra_op_num_threads": threads or torch.get_num_threads()}}}}))
        self.og, self.tok, self.model = og, tok, og.Model(config)

    def _one(self, chat: list[dict], max_new_tokens: int, stop_at_answer_end: bool) -> Generation:
        import numpy as np

        og, tok = self.og, self.tok
        prompt = _prompt_ids(tok, chat)
        params = og.GeneratorParams(self.model)
        params.set_search_options(**ORTGENAI_SEARCH, batch_size=1, max_length=len(prompt) + max_new_tokens)
        ids: list[int] = []
        logprobs: list[float] = []
        t0 = time.perf_counter()
        first = None
        gen = og.Generator(self.model, params)
        gen.append_tokens(np.asarray([prompt], dtype=np.int32))
        eos = {int(t) for t in np.atleast_1d(tok.eos_token_id)}
        while len(ids) < max_new_tokens:
            logits = gen.get_logits()[0, -1].astype(np.float64)  # the scores the next token is chosen from
            scores = logits.copy()
            scores[sorted(banned_next(ids, generation.ANSWER_NO_REPEAT_NGRAM))] = -np.inf  # as transformers' processor
            token = int(scores.argmax())  # greedy, chosen here so that the ban applies as on transformers
            if first is None:
                first = time.perf_counter()
            ids.append(token)
            top = logits.max()
            logprobs.append(float(logits[token] - top - np.log(np.exp(logits - top).sum())))
            if token in eos or (stop_at_answer_end and _answer_ended(tok, ids)):
                break
            gen.append_tokens(np.asarray([[token]], dtype=np.int32))
        total = time.perf_counter() - t0
        return _generation(tok, ids, logprobs, prompt, stop_at_answer_end, (first or t0 + total) - t0, total, 1)

    def generate_chats(self, batch: list[list[dict]], max_new_tokens: int, batch_size: int = 1,
                       stop_at_answer_end: bool = STOP_AT_ANSWER_END) -> list[Generation]:
        """Replies to `batch`, one chat per generator (batch_size is accepted for the interface and ignored).

        One by one: the builder's config pads with the EOS id (2, `<|im_end|>`), which every chat prompt also contains,
        so a padded ragged batch may mask real prompt tokens (batched ONNX Runtime GenAI was not measured)."""
        generation.check_chats(batch)
        return [self._one(m, max_new_tokens, stop_at_answer_end) for m in batch]
