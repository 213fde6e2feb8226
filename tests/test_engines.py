"""The optional fast engine's conversion cache (a fake converter: no CTranslate2 needed) and the fallback to
transformers when the engine cannot serve a model."""

import sys

import pytest
import torch

from ragft import systems
from ragft.generation import engines
from ragft.generation import pool as model_pool
from ragft.generation.decoding import Generation


class TinyModel(torch.nn.Linear):
    """Stands in for a transformers model: weights to hash, and a save_pretrained."""

    def __init__(self, fill=0.5):
        super().__init__(4, 4)
        torch.nn.init.constant_(self.weight, fill)
        torch.nn.init.zeros_(self.bias)

    def save_pretrained(self, folder):
        torch.save(self.state_dict(), f"{folder}/weights.pt")


class TinyTok:
    def save_pretrained(self, folder):
        open(f"{folder}/tokenizer.json", "w").write("{}")


class FakeConverter:
    def __init__(self):
        self.calls = 0

    def __call__(self, src, dst, quantization):
        self.calls += 1
        assert (src / "weights.pt").exists() and (src / "tokenizer.json").exists()  # it converts the saved checkpoint
        (dst / "model.bin").write_bytes(b"converted " + (src / "weights.pt").read_bytes()[:64])
        (dst / "config.json").write_text(f'{{"quantization": "{quantization}"}}')


def test_a_conversion_is_built_once_per_weights(tmp_path):
    convert = FakeConverter()
    a = engines.converted(TinyModel(0.5), TinyTok(), "int8", tmp_path, convert)
    assert engines.converted(TinyModel(0.5), TinyTok(), "int8", tmp_path, convert) == a and convert.calls == 1
    b = engines.converted(TinyModel(0.7), TinyTok(), "int8", tmp_path, convert)  # other weights: another folder
    assert b != a and convert.calls == 2
    c = engines.converted(TinyModel(0.5), TinyTok(), "float32", tmp_path, convert)
    assert c not in (a, b) and convert.calls == 3
    assert (a / "model.bin").exists() and (a / engines.MARKER).exists()


@pytest.mark.parametrize("damage", ["no marker", "truncated file", "other weights in marker"])
def test_a_half_written_or_mismatched_conversion_is_rebuilt(tmp_path, damage):
    convert = FakeConverter()
    model = TinyModel()
    out = engines.converted(model, TinyTok(), "int8", tmp_path, convert)
    good = (out / "model.bin").read_bytes()
    if damage == "no marker":  # what an interrupted conversion leaves: files, no marker
        (out / engines.MARKER).unlink()
    elif damage == "truncated file":
        (out / "model.bin").write_bytes(good[:5])
    else:
        marker = out / engines.MARKER
        marker.write_text(marker.read_text().replace(engines.generation.weights_checksum(model), "0" * 64))
    assert not engines.is_complete(out, engines.generation.weights_checksum(model), "int8")
    assert engines.converted(model, TinyTok(), "int8", tmp_path, convert) == out
    assert convert.calls == 2 and (out / "model.bin").read_bytes() == good
    assert engines.is_complete(out, engines.generation.weights_checksum(model), "int8")


def test_a_failed_conversion_says_why_and_leaves_nothing(tmp_path):
    def broken(src, dst, quantization):
        (dst / "model.bin").write_bytes(b"half")
        raise NotImplementedError("No conversion is registered for the model configuration GPT2Config")

    with pytest.raises(engines.EngineUnavailable, match="could not convert the model: NotImplementedError: No conv"):
        engines.converted(TinyModel(), TinyTok(), "int8", tmp_path, broken)
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]


def test_engine_not_installed_is_an_engine_unavailable(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ctranslate2", None)  # import fails as if not installed
    monkeypatch.setitem(sys.modules, "ctranslate2.converters", None)
    with pytest.raises(engines.EngineUnavailable, match="ctranslate2 is not installed"):
        engines.converted(TinyModel(), TinyTok(), "int8", tmp_path)
    with pytest.raises(engines.EngineUnavailable, match="ctranslate2 is not installed"):
        engines.Ct2Generator(tmp_path, TinyTok())


@pytest.mark.parametrize("engine,message", [("ct2", "ctranslate2 is not installed"),
                                            ("ortgenai", "onnxruntime-genai is not installed")])
def test_engine_missing_means_one_message_and_the_transformers_path(monkeypatch, capsys, engine, message):
    monkeypatch.setitem(sys.modules, "ctranslate2", None)
    monkeypatch.setitem(sys.modules, "ctranslate2.converters", None)
    monkeypatch.setitem(sys.modules, "onnxruntime_genai", None)
    monkeypatch.setattr(model_pool, "load_llm", lambda name, dtype=None: (TinyModel(), TinyTok()))
    used = []

    def transformers_path(model, tok, batch, max_new_tokens, batch_size=8, **kw):
        used.append(len(batch))
        return [Generation("Answer: x.\nSource: numpy.x", 10, 5, 0.1, 0.2) for _ in batch]

    monkeypatch.setattr(model_pool, "generate_chats", transformers_path)
    pool = systems.ModelPool(engine=engine)
    chats = [[{"role": "user", "content": "q?"}]] * 2
    for _ in range(2):
        gens = pool.generate_batch(systems.System("base"), chats)
        assert [g.text for g in gens] == ["Answer: x.\nSource: numpy.x"] * 2
    out = capsys.readouterr().out
    assert out.count(f"[ragft] fast engine off: {message}") == 1 and "Answering with transformers" in out
    assert pool.engine == "transformers" and used == [2, 2]


def test_cache_keys_keep_engines_apart():
    s, msgs = systems.System("base"), [{"role": "user", "content": "q?"}]
    assert systems.AnswerCache.key(s, msgs) == systems.AnswerCache.key(s, msgs, "transformers")
    keys = {systems.AnswerCache.key(s, msgs, e) for e in engines.ENGINES}
    assert len(keys) == len(engines.ENGINES)  # no two runtimes share an answer


def test_unknown_engine_is_refused():
    with pytest.raises(ValueError, match="engine must be one of"):
        systems.ModelPool(engine="vllm")


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["ct2 float32", "ortgenai fp32"])
def test_fast_engine_in_full_precision_answers_like_transformers(small_llm, tmp_path, engine, monkeypatch):
    """Same decoding on both runtimes (greedy, no penalty, the stop at the answer's end, the answer-only n-gram ban):
    the same answer in full precision (same prompt tokens, same stop). CTranslate2 cannot ban within the answer only,
    so it refuses while the ban is on and is compared with the ban off on both runtimes."""
    from ragft import generation
    from ragft.core import house

    name, precision = engine.split()
    for module in {"ct2": ["ctranslate2"], "ortgenai": ["onnxruntime_genai", "onnx_ir"]}[name]:
        pytest.importorskip(module)
    model, tok = small_llm
    if name == "ct2":
        assert engines.generation.ANSWER_NO_REPEAT_NGRAM
        with pytest.raises(engines.EngineUnavailable, match="within the answer only"):
            engines.Ct2Generator(tmp_path, tok)
        monkeypatch.setattr(engines.generation, "ANSWER_NO_REPEAT_NGRAM", 0)
    chats = [generation.chat_messages(q, house.SYSTEM_PROMPT) for q in ("What does `np.sort` do?", "What replaces np.float_?")]
    want = systems.generate_chats(model, tok, chats, 40)
    if name == "ct2":
        fast = engines.Ct2Generator(engines.converted(model, tok, precision, tmp_path), tok)
    else:
        fast = engines.OrtGenAIGenerator(engines.ortgenai_converted(model, tok, precision, tmp_path), tok)
    got = fast.generate_chats(chats, 40)
    assert [g.text for g in got] == [g.text for g in want]
    assert [g.n_new_tokens for g in got] == [g.n_new_tokens for g in want]
    assert all(g.n_prompt_tokens == w.n_prompt_tokens for g, w in zip(got, want, strict=True))


def test_ortgenai_not_installed_is_an_engine_unavailable(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime_genai", None)  # import fails as if not installed
    with pytest.raises(engines.EngineUnavailable, match="onnxruntime-genai is not installed"):
        engines.ortgenai_converted(TinyModel(), TinyTok(), "int4", tmp_path)
    with pytest.raises(engines.EngineUnavailable, match="onnxruntime-genai is not installed"):
        engines.OrtGenAIGenerator(tmp_path, TinyTok())
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]


def test_ortgenai_conversions_are_cached_per_weights_and_precision(tmp_path):
    convert = FakeConverter()
    a = engines.ortgenai_converted(TinyModel(0.5), TinyTok(), "int4", tmp_path, convert)
    assert engines.ortgenai_converted(TinyModel(0.5), TinyTok(), "int4", tmp_path, convert) == a and convert.calls == 1
    assert engines.ortgenai_converted(TinyModel(0.5), TinyTok(), "fp32", tmp_path, convert) != a and convert.calls == 2
    (a / engines.ORTGENAI_MARKER).unlink()  # what an interrupted conversion leaves
    assert engines.ortgenai_converted(TinyModel(0.5), TinyTok(), "int4", tmp_path, convert) == a and convert.calls == 3
    assert engines.is_complete(a, engines.generation.weights_checksum(TinyModel(0.5)), "int4", engines.ORTGENAI_MARKER)


def test_ortgenai_greedy_search_options_match_transformers_greedy():
    s = engines.ORTGENAI_SEARCH
    assert s["do_sample"] is False and s["num_beams"] == 1 and s["top_k"] == 1
    assert s["repetition_penalty"] == (engines.REPETITION_PENALTY or 1.0) == 1.0
