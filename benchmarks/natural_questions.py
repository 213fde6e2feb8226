"""Retrieval for the way people ask: Django's documentation, asked with its FAQ's questions (ragft.builders.nq_bench).

The documents are NOT in this repository: the first run downloads Django's source distribution with pip into the user
cache (~/.cache/ragft/django-docs) and reads its docs/*.txt (reST), leaving out the FAQ pages (the questions) and the
release notes. Gold: the pages each FAQ answer links to. Prints recall@5 and MRR@10 of documents (a document ranked by
its best chunk) on the dev and the held-out test questions for: the plain baseline (MiniLM over fixed 1,000-character
chunks, overlap 200, exact cosine), ragft's default (`build_retriever(..., mode="hybrid")`, default chunking), its
dense and BM25 halves, the hybrid with its fusion weight calibrated on the dev questions, and the differences the
goals name (default >= baseline + 0.05 recall@5, >= baseline MRR@10).
Embeddings are cached by text, so only the first run embeds (about 13,000 chunks).

With `--formats [md rst txt html]` the same pages are rendered mechanically as each format (`ragft.builders.doc_formats`),
loaded with `load_folder` as a user's folder is, and the baseline and the default scored per format (gold mapped by
stem); the figures record the commit, date and command (docs/benchmarks/natural_questions.json).

    python benchmarks/natural_questions.py [--max-chars N] [--chunk-size 200] [--formats] [--out results.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from ragft.builders import doc_formats, docs_bench, nq_bench  # noqa: E402
from ragft.data.corpus import load_folder  # noqa: E402
from ragft.evaluation import calibration  # noqa: E402
from ragft.evaluation.ranking import mrr, recall_at_k  # noqa: E402
from ragft.retrieval import retrievers  # noqa: E402
from ragft.retrieval.chunking import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE, ChunkConfig, token_lengths  # noqa: E402
from ragft.retrieval.embeddings import get_encoder  # noqa: E402

CANDIDATES = 50  # chunks each retriever returns before they are grouped into files
BASELINE = "baseline: fixed 1000 chars, dense"
DEFAULT = "ragft default (hybrid)"


def subset(docs, questions, max_chars: int | None):
    """Every gold page, then other pages by hash of their name until max_chars (None: all), for quick runs."""
    if max_chars is None:
        return docs
    gold = {g for q in questions for g in q.gold}
    rest = sorted((d for d in docs if d.doc_id not in gold),
                  key=lambda d: hashlib.sha256(d.doc_id.encode()).hexdigest())
    picked = [d for d in docs if d.doc_id in gold]
    total = sum(len(d.text) for d in picked)
    for d in rest:
        if total + len(d.text) <= max_chars:
            picked.append(d)
            total += len(d.text)
    return sorted(picked, key=lambda d: d.doc_id)


def scores(rankings, golds) -> dict[str, float]:
    return {"recall@5": float(np.mean([recall_at_k(r, g, 5) for r, g in zip(rankings, golds, strict=True)])),
            "mrr@10": float(np.mean([mrr(r, g, 10) for r, g in zip(rankings, golds, strict=True)]))}


def split_questions(questions) -> dict:
    """{"dev": ..., "test": ...}: the questions of each split."""
    return {s: [q for q in questions if q.split == s] for s in ("dev", "test")}


def build_arms(docs, encoder, args):
    """The plain baseline (chunk doc_ids, vectors, seconds), ragft's default hybrid and the arms scored from it
    ({name: retriever}: the default, its dense and BM25 halves) and the hybrid's build seconds."""
    t0 = time.perf_counter()
    plain = docs_bench.char_chunks(docs, 1000, 200)
    X = encoder.encode([c.text for c in plain], desc="fixed 1000 chars")
    plain_s, plain_ids = time.perf_counter() - t0, [c.doc_id for c in plain]
    t0 = time.perf_counter()
    cfg = ChunkConfig("structure", args.chunk_size, args.chunk_overlap)
    hybrid = retrievers.build_retriever(docs, "hybrid", cfg, embedder=encoder)
    hybrid.dense.config.ef = max(hybrid.dense.config.ef, 2 * CANDIDATES)
    build_s = time.perf_counter() - t0
    lengths = token_lengths(hybrid.dense.chunks)
    print(f"baseline: {len(plain)} chunks, {plain_s:.0f} s; ragft default: {len(hybrid)} chunks, mean "
          f"{lengths.mean():.0f} / max {lengths.max()} tokens, {build_s:.0f} s")
    arms = {DEFAULT: hybrid, "--mode dense": hybrid.dense, "--mode bm25": hybrid.bm25}
    return (plain_ids, X, plain_s), (hybrid, arms, build_s)


def score_splits(splits, encoder, plain_ids, X, arms) -> dict:
    """{split: questions, each arm's recall@5 / MRR@10 (the baseline first) and the default's differences to it}."""
    out = {}
    for split, qs in splits.items():
        texts, golds = [q.question for q in qs], [set(q.gold) for q in qs]
        Q = encoder.encode(texts, show_progress=False)
        results = {BASELINE: scores([docs_bench.file_ranking(plain_ids, X @ qv) for qv in Q], golds)}
        for name, r in arms.items():
            hits = r.search_batch(texts, top_k=CANDIDATES)
            results[name] = scores([docs_bench.hits_ranking(h) for h in hits], golds)
        base, d = results[BASELINE], results[DEFAULT]
        diffs = {"default - baseline, recall@5 (goal >= +0.05)": d["recall@5"] - base["recall@5"],
                 "default / baseline, MRR@10 (goal >= 1.00)": d["mrr@10"] / max(base["mrr@10"], 1e-9)}
        print(f"\n{split} ({len(qs)} questions){'':28s} recall@5  MRR@10")
        for name, r in results.items():
            print(f"  {name:44s} {r['recall@5']:8.3f} {r['mrr@10']:7.3f}")
        print("  " + "; ".join(f"{k} {v:+.3f}" if "-" in k.split(",")[0] else f"{k} {v:.3f}" for k, v in diffs.items()))
        out[split] = {"questions": len(qs), "results": results, "differences": diffs}
    return out


def by_format(docs, questions, encoder, args) -> dict:
    """The same pages rendered as each format (doc_formats), loaded as a user's folder is, and scored per split."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for fmt, folder in doc_formats.write_formats(docs, tmp, args.formats or doc_formats.FORMATS).items():
            fdocs, _ = load_folder(folder)
            qs = [replace(q, gold=[doc_formats.renamed(g, fmt) for g in q.gold]) for q in questions]
            print(f"\n=== .{fmt} ({fdocs[0].metadata['format']}): {len(fdocs)} pages, "
                  f"{sum(len(d.text) for d in fdocs):,} characters")
            t0 = time.perf_counter()
            (plain_ids, X, plain_s), (hybrid, arms, build_s) = build_arms(fdocs, encoder, args)
            out[fmt] = {"format": fdocs[0].metadata["format"], "pages": len(fdocs),
                        "characters": sum(len(d.text) for d in fdocs), "chunks_baseline": len(plain_ids),
                        "chunks_default": len(hybrid), "seconds_baseline": plain_s, "seconds_default": build_s,
                        "splits": score_splits(split_questions(qs), encoder, plain_ids, X, arms),
                        "seconds": time.perf_counter() - t0}
    return out


def provenance(argv) -> dict:
    """The commit (and whether the tree had uncommitted changes), UTC date and command of a run."""
    def git(*a):
        return subprocess.run(["git", *a], capture_output=True, text=True, check=False).stdout.strip()

    return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain", "-uno")),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "command": " ".join(["python benchmarks/natural_questions.py", *argv])}


def main(argv=None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", default=None, help="a Django docs/ folder (default: downloaded into the user cache)")
    ap.add_argument("--max-chars", type=int, default=None, help="index only the gold pages and others up to this")
    ap.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE, help="ragft's chunk size in tokens")
    ap.add_argument("--chunk-overlap", type=int, default=DEFAULT_CHUNK_OVERLAP)
    ap.add_argument("--formats", nargs="*", choices=doc_formats.FORMATS, default=None,
                    help="score the same pages rendered as these formats (none named: all of them)")
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    args = ap.parse_args(argv)

    docs, questions = nq_bench.load_django(args.docs)
    docs = subset(docs, questions, args.max_chars)
    splits = split_questions(questions)
    print(f"{len(docs)} pages, {sum(len(d.text) for d in docs):,} characters; questions: "
          + ", ".join(f"{s} {len(qs)}" for s, qs in splits.items()))
    encoder = get_encoder("minilm")
    if args.formats is not None:
        out = {**provenance(argv), "pages": len(docs), "formats": by_format(docs, questions, encoder, args)}
        print("\ntest, default vs baseline:  " + "; ".join(
            f".{f}: recall@5 {s['splits']['test']['results'][DEFAULT]['recall@5']:.3f} vs "
            f"{s['splits']['test']['results'][BASELINE]['recall@5']:.3f}" for f, s in out["formats"].items()))
    else:
        out = measure(docs, splits, encoder, args)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    return out


def measure(docs, splits, encoder, args) -> dict:
    """The baseline, the default, its dense and BM25 halves and the hybrid with its weight calibrated on dev."""
    (plain_ids, X, plain_s), (hybrid, arms, build_s) = build_arms(docs, encoder, args)
    dev = splits["dev"]
    tuned = retrievers.HybridRetriever(hybrid.dense, hybrid.bm25, fusion="convex", candidates=CANDIDATES)
    cal = calibration.calibrate_fusion(tuned, [q.question for q in dev], [set(q.gold) for q in dev])
    print(f"calibrate_fusion on the {len(dev)} dev questions (dense weight: recall@5 / MRR@10): " + ", ".join(
        f"{r['weight']:g}: {r['recall@5']:.2f}/{r['mrr@10']:.2f}" for r in cal.rows) + f"; chose {cal.weight}")
    arms[f"hybrid, weight calibrated on dev ({cal.weight})"] = tuned
    return {"pages": len(docs), "characters": sum(len(d.text) for d in docs), "chunks_baseline": len(plain_ids),
            "chunks_default": len(hybrid), "fusion_weight_dev": cal.weight, "seconds_baseline": plain_s,
            "seconds_default": build_s, "splits": score_splits(splits, encoder, plain_ids, X, arms)}


if __name__ == "__main__":
    main()
