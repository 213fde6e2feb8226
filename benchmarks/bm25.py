"""BM25: ragft's own implementation against bm25s (https://github.com/xhluca/bm25s) on the same tokens.

Builds BM25 over the chunks of the whole NumPy 2.4.6 corpus (structure chunks, as `build_retriever(docs, "bm25")`
does) both ways. bm25s gets ragft's tokens (`retrievers.bm25_tokens`), not its own tokenizer, so what is matched stays
visible and identical; method="lucene" with the same k1 and b is today's formula (idf log(1 + (N - df + 0.5) /
(df + 0.5)), tf part tf / (tf + k1 (1 - b + b |d| / avgdl))) up to the constant factor k1 + 1, which the wrapper puts
back so raw scores (and thresholds) stay the same. Prints index build seconds, queries/s (`search_batch`, top 10, every
QA question), the share of questions whose top-10 ranking (chunk ids) is identical, recall@5 / MRR@10 of the gold
documents on the dev questions, and the ratios (bm25s over today's) as the last lines. Asserts nothing; timings depend
on the machine and its load (printed).

Measured 2026-12-01 on the shared 2-core VM (load average 2.4-2.6 from a notebook run beside it), --repeat 5, 6,431
chunks: build 0.228 s (ragft) vs 0.259 s (bm25s), sync with 5% of the documents edited 0.312 vs 0.359 s (neither
updates in place: both rebuild the term statistics), 6,062 vs 3,652 queries/s (two other runs: 5,826 vs 5,281 and
6,176 vs 5,359), identical top-10 rankings for 297/297 questions, recall@5 0.891 and MRR@10 0.811 on the 88 dev
questions for both. bm25s's own `retrieve(k=10)` did about 3,500 queries/s. So bm25s is not faster here (its numpy
backend scores each query term with np.add.at; ragft adds one postings array per term) and stays an opt-in backend
(`BM25Retriever(backend="bm25s")`, `pip install "ragft[bm25s]"`), kept as a cross-check of the formula. What did
help: top-k by partition instead of a full sort of all 6,431 scores, 2,333 -> 6,062 queries/s with the same rankings
(the "before this change" line).

    .venv/bin/python benchmarks/bm25.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from ragft.data.corpus import load_corpus  # noqa: E402
from ragft.data.datasets import load_qa  # noqa: E402
from ragft.evaluation.ranking import evaluate_retrieval  # noqa: E402
from ragft.retrieval.chunking import ChunkConfig, chunk_documents  # noqa: E402
from ragft.retrieval.retrievers import BM25Retriever  # noqa: E402

VERSION = "2.4.6"


def full_sort_search(r: BM25Retriever, queries, top_k: int = 10) -> list[list[str]]:
    """search_batch as it was before bm25s (a full stable argsort of every chunk's score per query): chunk ids."""
    out = []
    for q in queries:
        s = r.scores(q)
        out.append([r.chunks[i].chunk_id for i in np.argsort(-s, kind="stable")[:top_k] if s[i] > 0])
    return out


def best_of(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="timings are the best of this many runs")
    args = ap.parse_args()
    import bm25s

    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} on "
          f"{os.cpu_count()} CPUs; bm25s {bm25s.__version__}")
    docs = load_corpus(VERSION)
    cfg = ChunkConfig()
    chunks = chunk_documents(docs, cfg)
    questions = [it.question for it in load_qa(None)]
    dev = load_qa("dev")
    print(f"NumPy {VERSION}: {len(docs)} documents, {len(chunks)} chunks; {len(questions)} QA questions, "
          f"{len(dev)} dev")
    changed = [dataclasses.replace(d, text=d.text + " (edited)") if i % 20 == 0 else d for i, d in enumerate(docs)]
    hashes = {d.doc_id: d.content_hash for d in docs}
    rows = {}
    for name in ("numpy", "bm25s"):
        build_s, r = best_of(lambda n=name: BM25Retriever(chunks, chunk_config=cfg, backend=n), args.repeat)
        search_s, results = best_of(lambda r=r: r.search_batch(questions, top_k=10), args.repeat)
        _, means = evaluate_retrieval(r, dev, VERSION, top_k=10)
        rows[name] = {"build_s": build_s, "qps": len(questions) / search_s, "results": results,
                      "recall@5": means["recall@5"], "mrr": means["mrr"]}
        syncs = []
        for _ in range(args.repeat):  # sync re-chunks the changed documents and rebuilds the term statistics
            fresh = BM25Retriever(chunks, chunk_config=cfg, doc_hashes=hashes, backend=name)
            syncs.append(fresh.sync(changed).seconds)
        rows[name]["sync_s"] = min(syncs)
        if name == "numpy":  # the search as it was before bm25s, for the queries/s it started from
            sort_s, before = best_of(lambda r=r: full_sort_search(r, questions), args.repeat)
            assert before == [[h.chunk_id for h in hits] for hits in results]
    same_chunks = sum([h.chunk_id for h in a] == [h.chunk_id for h in b]
                      for a, b in zip(rows["numpy"]["results"], rows["bm25s"]["results"], strict=True))
    same_docs = sum([h.doc_id for h in a] == [h.doc_id for h in b]
                    for a, b in zip(rows["numpy"]["results"], rows["bm25s"]["results"], strict=True))
    print("| BM25 | build s | sync s (5% of documents edited) | queries/s | recall@5 (dev) | MRR@10 (dev) |\n"
          "|---|---|---|---|---|---|")
    for name, label in (("numpy", "ragft (numpy postings)"), ("bm25s", "bm25s 'lucene', ragft tokens")):
        r = rows[name]
        print(f"| {label} | {r['build_s']:.3f} | {r['sync_s']:.3f} | {r['qps']:.0f} | {r['recall@5']:.3f} | {r['mrr']:.3f} |")
    n = len(questions)
    print(f"identical top-10 ranking: {same_chunks}/{n} by chunk ({same_chunks / n:.3f}), {same_docs}/{n} by document "
          f"({same_docs / n:.3f})")
    a, b = rows["numpy"], rows["bm25s"]
    print(f"before this change (numpy postings, full sort of every score per query): {len(questions) / sort_s:.0f} "
          f"queries/s, same rankings as the numpy row")
    print(f"build speed-up bm25s/today: {a['build_s'] / b['build_s']:.2f}x")
    print(f"sync speed-up bm25s/today: {a['sync_s'] / b['sync_s']:.2f}x")
    print(f"queries/s bm25s/today: {b['qps'] / a['qps']:.2f}x; bm25s/before this change: "
          f"{b['qps'] * sort_s / len(questions):.2f}x")
    print(f"recall@5 bm25s - today: {b['recall@5'] - a['recall@5']:+.3f}; MRR@10 bm25s - today: {b['mrr'] - a['mrr']:+.3f}")


if __name__ == "__main__":
    main()
