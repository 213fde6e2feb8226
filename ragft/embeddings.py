"""Text -> unit-length float32 vectors: MiniLM with batching, a progress bar and an on-disk cache, plus a weak encoder.

The cache (one SQLite file per model under `cache_dir("embeddings")`, keyed by the model files' hash and the text's
sha256) means a re-run, or a knowledge update that leaves most text unchanged, embeds nothing twice. The weak encoder
(hashed bag of words) shares the interface so notebooks can show what poor embeddings cost.
Does not chunk (see `chunking.py`) or index (see `index.py`).
Introduced in notebooks/02_hnsw_retrieval.ipynb.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import sqlite3
import time
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .paths import cache_dir


def _text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def model_hash(folder: Path) -> str:
    """sha256 over a model folder's files (names and bytes), memoised by their sizes and mtimes in the cache."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    state = json.dumps([(str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in files])
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
                 model=None):
        from .models import embedder_path, spec

        if spec(name).kind != "embedding":
            raise ValueError(f"{name!r} is not an embedding model")
        self.name = name
        self.batch_size = batch_size
        self._folder = embedder_path(name)
        self.model_id = f"{name}-{model_hash(self._folder)[:12]}"
        cfg = json.loads((self._folder / "config.json").read_text())
        self.dim = int(cfg.get("hidden_size", 384))
        self._model = model  # an already loaded SentenceTransformer of the same model, to share it between encoders
        self._cache = EmbeddingCache(self.model_id, self.dim, cache_folder) if cache else None
        self.stats = {"cached": 0, "computed": 0, "seconds": 0.0}  # running totals, for "what did that re-embed?"

    @property
    def model(self):
        if self._model is None:
            from .models import load_embedder

            self._model = load_embedder(self.name)
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
def get_encoder(name: str = "minilm"):
    """A shared encoder by name ("minilm", "hashing" or "hashing-<dim>"), so notebooks and indexes load MiniLM once."""
    if name.startswith("hashing"):
        dim = int(name.split("-")[-1]) if name != "hashing" and name.split("-")[-1].isdigit() else 384
        return HashingEncoder(dim)
    return Encoder(name)


def encoder_for_model_id(model_id: str):
    """The encoder an index was built with, from the model_id it recorded ("minilm-<hash>", "hashing-bow-384")."""
    if model_id.startswith("hashing-bow-"):
        return get_encoder(f"hashing-{model_id.rsplit('-', 1)[-1]}")
    return get_encoder(model_id.rsplit("-", 1)[0])
