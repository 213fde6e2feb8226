"""Encoders: unit-length float32 rows, deterministic, and a cache that means nothing is embedded twice."""

import numpy as np
import pytest

from ragft.generation.models import is_available
from ragft.retrieval.embeddings import EmbeddingCache, Encoder, HashingEncoder, encoder_for_model_id, get_encoder

TEXTS = ["np.sort returns a sorted copy of an array.", "np.float_ was removed in NumPy 2.0.", "Cats purr.",
         "np.sort returns a sorted copy of an array."]


def test_hashing_encoder_is_normalized_deterministic_and_word_based():
    enc = HashingEncoder(dim=64)
    v = enc.encode(TEXTS)
    assert v.shape == (4, 64) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(v[0], v[3])
    np.testing.assert_array_equal(v, HashingEncoder(dim=64).encode(TEXTS))
    a, b = enc.encode(["delete the rows", "remove the rows"])
    assert a @ b < 0.9  # it matches words, not meanings
    assert enc.encode([]).shape == (0, 64)
    assert enc.model_id == "hashing-bow-64" and enc.dim == 64


def test_encoder_lookup_by_name_and_model_id():
    assert get_encoder("hashing") is get_encoder("hashing")
    assert encoder_for_model_id("hashing-bow-128").dim == 128


def test_cache_round_trip_and_damaged_rows(tmp_path):
    cache = EmbeddingCache("m", 4, tmp_path)
    cache.put(["a", "b"], np.eye(4, dtype=np.float32)[:2])
    got = cache.get(["a", "b", "c"])
    assert set(got) == {"a", "b"}
    np.testing.assert_array_equal(got["b"], [0, 1, 0, 0])
    cache._db.execute("INSERT OR REPLACE INTO emb VALUES ('a', ?)", (b"\x00" * 3,))  # a torn write
    assert set(cache.get(["a", "b"])) == {"b"}  # the damaged row is recomputed, not trusted
    assert len(EmbeddingCache("m", 4, tmp_path)) == 2  # on disk, seen by another instance


@pytest.mark.slow
@pytest.mark.skipif(not is_available("minilm"), reason="MiniLM package not installed")
def test_minilm_encoder_caches_on_disk(tmp_path):
    enc = Encoder(cache_folder=tmp_path)
    assert enc.dim == 384 and enc.model_id.startswith("minilm-")
    v1 = enc.encode(TEXTS, show_progress=False)
    assert enc.stats["computed"] == 3  # the duplicate text is embedded once
    np.testing.assert_allclose(np.linalg.norm(v1, axis=1), 1.0, rtol=1e-5)
    again = Encoder(cache_folder=tmp_path)  # a new process would see the same
    again._model = enc._model
    v2 = again.encode(TEXTS, show_progress=False)
    assert again.stats["computed"] == 0 and again.stats["cached"] == 4
    np.testing.assert_array_equal(v1, v2)
    assert v1[0] @ v1[1] > v1[0] @ v1[2]  # two NumPy sentences are closer to each other than to cats


def _has(*modules: str) -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in modules)


BACKEND_FAMILIES = {  # extra: (its modules, [(backend, lowest cosine to torch)])
    "onnx": (("onnxruntime", "onnx"), [("onnx", 0.9999), ("onnx-int8", 0.9)]),
    "openvino": (("openvino", "onnx", "nncf"), [("openvino", 0.999), ("openvino-int8", 0.95)]),
}


@pytest.mark.slow
@pytest.mark.parametrize("extra", sorted(BACKEND_FAMILIES))
def test_backends_match_torch_and_cache_apart(tmp_path, extra):
    modules, backends = BACKEND_FAMILIES[extra]
    if not is_available("minilm") or not _has(*modules):
        pytest.skip(f"needs the MiniLM package and the {extra} extra ({', '.join(modules)})")
    torch_enc = Encoder(cache_folder=tmp_path)
    ref = torch_enc.encode(TEXTS, show_progress=False)
    for backend, min_cos in backends:
        enc = Encoder(cache_folder=tmp_path, backend=backend)
        assert enc.model_id == f"{torch_enc.model_id}-{backend}"
        v = enc.encode(TEXTS, show_progress=False)
        assert enc.stats["computed"] == 3, "a backend never reads another backend's cached vectors"
        np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
        assert np.sum(v * ref, axis=1).min() >= min_cos, backend
        assert v[0] @ v[1] > v[0] @ v[2]
        assert encoder_for_model_id(enc.model_id).backend == backend
        if extra == "openvino":
            assert enc.model.path.exists() and enc.model.path.with_suffix(".bin").exists()  # converted once, cached
    assert sorted(p.name for p in tmp_path.glob("*.sqlite")) == sorted(
        f"{torch_enc.model_id}{s}.sqlite" for s in ("", *(f"-{b}" for b, _ in backends)))
    assert encoder_for_model_id(torch_enc.model_id).backend == "torch"


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="backend"):
        Encoder(backend="tensorrt")


def test_openvino_backend_without_its_extra_names_what_to_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
    with pytest.raises(ValueError, match=r"backend 'openvino-int8' needs openvino.*pip install 'ragft\[openvino\]'"):
        Encoder(backend="openvino-int8", cache=False)
