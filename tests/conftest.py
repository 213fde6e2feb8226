"""Shared test setup: offline Hugging Face, the GPU skip, the real small model, and fakes that need no model.

Fixtures are found by name; the plain helpers (`make_hits`, `FakeRetriever`, `qa_item`) are imported with
`from conftest import ...`.
"""

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from ragft import report
from ragft.core import house
from ragft.data.datasets import QAItem
from ragft.generation.decoding import Generation
from ragft.retrieval.index import Hit

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


# The notebook files run longest (04-06 about 8 min, 00-03 about 6 min on 2 cores): collected first, so that with
# `-n 2 --dist loadfile --no-loadscope-reorder` (the Makefile) each worker starts on one of them and the unit tests fill
# in behind; xdist's default order (most tests first) left them to the end, with one worker idle for minutes.
LONGEST_FILES_FIRST = ("test_notebooks_training.py", "test_notebooks.py")


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)
    rank = {name: i for i, name in enumerate(LONGEST_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file keeps its own order


# --- the real small model ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def small_llm():
    """The real SmolLM2-135M, loaded once per test session (fp32)."""
    from ragft.generation import models

    return models.load_llm("smollm2-135m")


@pytest.fixture(scope="session")
def small_tokenizer():
    """SmolLM2-135M's tokenizer alone (no weights), from the converted checkpoint; do not modify it in a test."""
    from transformers import AutoTokenizer  # about a second to import: only the tests that ask for it pay

    from ragft.generation.models import ensure_converted

    return AutoTokenizer.from_pretrained(ensure_converted("smollm2-135m"))


# --- fakes: no model, no index ----------------------------------------------------------------------------------------
def make_hits(n: int = 5, words: int = 40, prefix: str = "numpy.f", top: float = 0.9, step: float = 0.1) -> list[Hit]:
    """n hits, best first, scores top, top - step, ...; each text a signature line and `words` filler words.

    make_hits(2, words=1)[1] -> Hit("numpy.f1", "numpy.f1#0", 0.8, "numpy.f1(x)\\n\\nalpha", 1)
    """
    filler = " ".join(["alpha"] * words)
    return [Hit(f"{prefix}{i}", f"{prefix}{i}#0", top - step * i, f"{prefix}{i}(x)\n\n{filler}", i) for i in range(n)]


class FakeRetriever:
    """Returns the same hits (best first) for every query, filtered by threshold like the real retrievers.

    `calls` records one `(queries, top_k, threshold)` tuple per search or search_batch call.
    """

    def __init__(self, hits: list[Hit]):
        self.hits, self.calls = list(hits), []

    def _top(self, top_k, threshold):
        return [h for h in self.hits if threshold is None or h.score >= threshold][:top_k]

    def search(self, query, top_k=5, threshold=None):
        self.calls.append(([query], top_k, threshold))
        return self._top(top_k, threshold)

    def search_batch(self, queries, top_k=5, threshold=None):
        self.calls.append((list(queries), top_k, threshold))
        return [self._top(top_k, threshold) for _ in queries]


class FakePool:
    """Stands in for `systems.ModelPool`: no model. Each chat is recorded in `calls` as {"arm", "adapter", "user",
    "contrast" (its passage-free chat, for context-aware decoding)} and
    answered with `reply(system)` (default: a canned house answer citing the float_ removal notice)."""

    def __init__(self, reply=None):
        self.calls = []
        self.reply = reply or (lambda system: house.render("Use `np.float64` instead.", "x = np.float64(1)",
                                                           ["removed:numpy.float_"]))

    def generate_batch(self, system, batch, batch_size=8, contrast=None):
        out = []
        for i, messages in enumerate(batch):
            self.calls.append({"arm": system.name, "adapter": system.adapter, "user": messages[-1]["content"],
                               "contrast": contrast[i] if contrast is not None else None})
            out.append(Generation(text=self.reply(system), n_prompt_tokens=10, n_new_tokens=12, ttft_s=0.1,
                                  total_s=0.5 * len(batch), batch_size=len(batch)))
        return out


def qa_item(id: str = "removed:float_", kind: str = "removed", facts=("np.float64",), stale=("np.float_",), gold=(),
            question: str | None = None, split: str = "dev", version: str = "2.4.6") -> QAItem:
    """A QAItem with only what a test cares about; the question defaults to "question <id>?"."""
    return QAItem(id=id, kind=kind, question=question or f"question {id}?", required_facts=list(facts),
                  stale_facts=list(stale), gold_doc_ids={version: list(gold)}, split=split)


@pytest.fixture
def fake_adapter(tmp_path):
    """make(name="adapter", base_model=None, config=None, weights=None) -> a folder that looks like a saved adapter.

    It holds peft's adapter_config.json (`config`, default {}), and if given ragft's ragft_adapter.json naming
    `base_model` and adapter_model.safetensors holding `weights` (bytes). Loading it as a real adapter fails.
    """

    def make(name="adapter", base_model=None, config=None, weights=None):
        d = tmp_path / name
        d.mkdir()
        (d / "adapter_config.json").write_text(json.dumps(config or {}))
        if base_model is not None:
            (d / "ragft_adapter.json").write_text(json.dumps({"base_model": base_model}))
        if weights is not None:
            (d / "adapter_model.safetensors").write_bytes(weights)
        return d

    return make


# --- notebooks --------------------------------------------------------------------------------------------------------
@pytest.fixture
def smoke_figures(tmp_path):
    """run(name) -> the figures notebooks/<name>.ipynb records when papermill executes it in the smoke profile."""
    def run(name: str) -> dict:
        report.execute_notebook(name, tmp_path, profile="smoke")
        if keep := os.environ.get("RAGFT_KEEP_SMOKE_FIGURES"):  # a folder: compare two commits' figures afterwards
            Path(keep).mkdir(parents=True, exist_ok=True)
            shutil.copy(Path(tmp_path) / f"{name}.json", Path(keep) / f"{name}.json")
        return report.read_figures(name, tmp_path)

    return run
