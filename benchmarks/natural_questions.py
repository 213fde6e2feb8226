"""Retrieval for the way people ask: Django's and SQLAlchemy's documentation, asked with their FAQs' questions
(ragft.builders.nq_bench).

The documents are NOT in this repository: the first run downloads each project's source distribution from PyPI into the
user cache (~/.cache/ragft/django-docs, ~/.cache/ragft/sqlalchemy-docs) and reads its reST sources, leaving out the FAQ
pages (the questions) and the release notes. Each project's pages are indexed on their own: a question searches only
its project's pages. Gold: the pages each FAQ answer links to. Prints recall@5 and MRR@10 of documents (a document
ranked by its best chunk) on the dev and the held-out test questions, per project and pooled (the mean over the
questions of both), for: the plain baseline (MiniLM over fixed 1,000-character chunks, overlap 200, exact cosine),
ragft's default (`build_retriever(..., mode="hybrid")`, default chunking), its dense and BM25 halves, the hybrid with
its fusion weight calibrated on each project's dev questions, and the differences the goals name (default >= baseline
+ 0.05 recall@5, >= baseline MRR@10).
Embeddings are cached by text, so only the first run embeds (about 13,000 chunks for Django).

With `--formats [md rst txt html]` (Django only) the same pages are rendered mechanically as each format
(`ragft.builders.doc_formats`), loaded with `load_folder` as a user's folder is, and the baseline and the default scored
per format (gold mapped by stem); the figures record the commit, date and command
(docs/benchmarks/natural_questions.json). With `--project all` the JSON holds each project's figures under "projects"
and the pooled ones under "pooled"; a single project's JSON has the keys of one of those.

    python benchmarks/natural_questions.py [--project django|sqlalchemy|all] [--max-chars N] [--chunk-size 200]
        [--formats] [--out results.json]
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
CALIBRATED = "hybrid, weight calibrated on dev"  # each project's arm name adds its weight
METRICS = {"recall@5": lambda r, g: recall_at_k(r, g, 5), "mrr@10": lambda r, g: mrr(r, g, 10)}


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


def per_question(rankings, golds) -> dict[str, list[float]]:
    """{metric: one value per question}."""
    return {k: [float(f(r, g)) for r, g in zip(rankings, golds, strict=True)] for k, f in METRICS.items()}


def means(values: dict[str, list[float]]) -> dict[str, float]:
    return {k: float(np.mean(v)) for k, v in values.items()}


def differences(results: dict) -> dict[str, float]:
    """The default against the baseline, as the goals put it."""
    base, d = results[BASELINE], results[DEFAULT]
    return {"default - baseline, recall@5 (goal >= +0.05)": d["recall@5"] - base["recall@5"],
            "default / baseline, MRR@10 (goal >= 1.00)": d["mrr@10"] / max(base["mrr@10"], 1e-9)}


def print_split(split: str, n: int, results: dict, diffs: dict) -> None:
    print(f"\n{f'{split} ({n} questions)':48s} recall@5  MRR@10")
    for name, r in results.items():
        print(f"  {name:46s} {r['recall@5']:8.3f} {r['mrr@10']:7.3f}")
    shown = (f"{k} {v:+.3f}" if "-" in k.split(",")[0] else f"{k} {v:.3f}" for k, v in diffs.items())
    print("  " + "; ".join(shown))


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


def score_splits(splits, encoder, plain_ids, X, arms, values: dict | None = None) -> dict:
    """{split: questions, each arm's recall@5 / MRR@10 (the baseline first) and the default's differences to it};
    `values`, when given, receives {split: {arm: {metric: one value per question}}} for pooling."""
    out = {}
    for split, qs in splits.items():
        texts, golds = [q.question for q in qs], [set(q.gold) for q in qs]
        Q = encoder.encode(texts, show_progress=False)
        each = {BASELINE: per_question([docs_bench.file_ranking(plain_ids, X @ qv) for qv in Q], golds)}
        for name, r in arms.items():
            hits = r.search_batch(texts, top_k=CANDIDATES)
            each[name] = per_question([docs_bench.hits_ranking(h) for h in hits], golds)
        results = {name: means(v) for name, v in each.items()}
        diffs = differences(results)
        print_split(split, len(qs), results, diffs)
        out[split] = {"questions": len(qs), "results": results, "differences": diffs}
        if values is not None:
            values[split] = each
    return out


def pool(values: dict) -> dict:
    """{split: questions, each arm's mean over the questions of every project, differences} from score_splits'
    `values` per project; the calibrated arms (one weight per project) pool under one name."""
    def arm(name):
        return f"{CALIBRATED} (per project)" if name.startswith(CALIBRATED) else name

    out = {}
    for split in ("dev", "test"):
        pooled: dict[str, dict[str, list[float]]] = {}
        for per_split in values.values():
            for name, v in per_split[split].items():
                for metric, xs in v.items():
                    pooled.setdefault(arm(name), {}).setdefault(metric, []).extend(xs)
        n = len(pooled[BASELINE]["recall@5"])
        results = {name: means(v) for name, v in pooled.items()}
        diffs = differences(results)
        print_split(f"pooled {split}", n, results, diffs)
        out[split] = {"questions": n, "results": results, "differences": diffs}
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
    ap.add_argument("--project", choices=[*nq_bench.PROJECTS, "all"], default="all",
                    help="whose docs and FAQ to measure (all: each on its own, then pooled)")
    ap.add_argument("--docs", default=None, help="a Django docs/ folder (default: downloaded into the user cache)")
    ap.add_argument("--max-chars", type=int, default=None, help="index only the gold pages and others up to this")
    ap.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE, help="ragft's chunk size in tokens")
    ap.add_argument("--chunk-overlap", type=int, default=DEFAULT_CHUNK_OVERLAP)
    ap.add_argument("--formats", nargs="*", choices=doc_formats.FORMATS, default=None,
                    help="score Django's pages rendered as these formats (none named: all of them); Django only")
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    args = ap.parse_args(argv)

    if args.formats is not None and args.project == "sqlalchemy":
        ap.error("--formats measures Django's pages only: use --project django (or leave --project out)")
    encoder = get_encoder("minilm")
    if args.formats is not None:
        docs, questions = load(args, "django")
        out = {**provenance(argv), "pages": len(docs), "formats": by_format(docs, questions, encoder, args)}
        print("\ntest, default vs baseline:  " + "; ".join(
            f".{f}: recall@5 {s['splits']['test']['results'][DEFAULT]['recall@5']:.3f} vs "
            f"{s['splits']['test']['results'][BASELINE]['recall@5']:.3f}" for f, s in out["formats"].items()))
    elif args.project != "all":
        docs, questions = load(args, args.project)
        out = measure(docs, split_questions(questions), encoder, args)
    else:
        projects, values = {}, {}
        for name in nq_bench.PROJECTS:
            print(f"\n===== {name}")
            docs, questions = load(args, name)
            projects[name] = measure(docs, split_questions(questions), encoder, args, values.setdefault(name, {}))
        print("\n===== pooled: " + " + ".join(nq_bench.PROJECTS))
        out = {**provenance(argv), "projects": projects, "pooled": pool(values)}
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    return out


def load(args, name: str):
    """A project's pages (subset to --max-chars) and questions, with a line that counts them."""
    docs, questions = nq_bench.load_project(name, args.docs if name == "django" else None)
    docs = subset(docs, questions, args.max_chars)
    print(f"{name}: {len(docs)} pages, {sum(len(d.text) for d in docs):,} characters; questions: "
          + ", ".join(f"{s} {len(qs)}" for s, qs in split_questions(questions).items()))
    return docs, questions


def measure(docs, splits, encoder, args, values: dict | None = None) -> dict:
    """The baseline, the default, its dense and BM25 halves and the hybrid with its weight calibrated on dev
    (`values`: see score_splits)."""
    (plain_ids, X, plain_s), (hybrid, arms, build_s) = build_arms(docs, encoder, args)
    dev = splits["dev"]
    tuned = retrievers.HybridRetriever(hybrid.dense, hybrid.bm25, fusion="convex", candidates=CANDIDATES)
    cal = calibration.calibrate_fusion(tuned, [q.question for q in dev], [set(q.gold) for q in dev])
    print(f"calibrate_fusion on the {len(dev)} dev questions (dense weight: recall@5 / MRR@10): " + ", ".join(
        f"{r['weight']:g}: {r['recall@5']:.2f}/{r['mrr@10']:.2f}" for r in cal.rows) + f"; chose {cal.weight}")
    arms[f"{CALIBRATED} ({cal.weight})"] = tuned
    return {"pages": len(docs), "characters": sum(len(d.text) for d in docs), "chunks_baseline": len(plain_ids),
            "chunks_default": len(hybrid), "fusion_weight_dev": cal.weight, "seconds_baseline": plain_s,
            "seconds_default": build_s, "splits": score_splits(splits, encoder, plain_ids, X, arms, values)}


if __name__ == "__main__":
    main()
