"""Retrieval benchmark: hnswlib against the fastest exact search and faiss HNSW, and an index update against a rebuild.

One run, one machine, printed as markdown tables:
  (a) the real corpus (NumPy 2.4.6, structure chunks, MiniLM): build time, recall@10 and queries/s at several ef;
  (b) synthetic clustered 384-d unit vectors (100k by default): the same, plus faiss IndexHNSWFlat at the same knobs;
  (c) the update: 5% of the documents changed, `sync` against a full rebuild, both from an empty embedding cache.
Goals (issue 3): recall@10 >= 0.99 at >= 10x the best exact baseline's queries/s on (b); within 10% of faiss HNSW's
queries/s at equal recall; the 5% update <= 10% of the full build time. Each goal prints PASS or FAIL with its numbers.
This is a script, not a test: timings depend on the machine and on what else runs on it (it prints the load average).

    .venv/bin/python benchmarks/retrieval.py                 # everything (~10-20 min on 2 cores, most of it embedding)
    .venv/bin/python benchmarks/retrieval.py --docs 200 --n-synthetic 20000   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ragft import corpus, datasets, embeddings, index, retrievers  # noqa: E402
from ragft.chunking import ChunkConfig  # noqa: E402
from ragft.corpus import Document  # noqa: E402

EF_VALUES = (10, 16, 24, 32, 64, 128, 256)
K = 10


def table(rows: list[dict], cols: list[str]) -> str:
    def fmt(v):
        if isinstance(v, float):
            return f"{v:,.3f}" if abs(v) < 10 else f"{v:,.0f}"
        return str(v)

    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(out)


def faiss_curve(X: np.ndarray, Q: np.ndarray, truth: np.ndarray, M: int, ef_construction: int, repeats: int) -> list[dict]:
    import faiss

    t0 = time.perf_counter()
    graph = faiss.IndexHNSWFlat(X.shape[1], M, faiss.METRIC_INNER_PRODUCT)
    graph.hnsw.efConstruction = ef_construction
    graph.add(np.ascontiguousarray(X))
    build_s = time.perf_counter() - t0
    rows = []
    for ef in EF_VALUES:
        graph.hnsw.efSearch = max(ef, K)
        found = graph.search(Q, K)[1]
        qps = len(Q) / index.best_time(lambda: graph.search(Q, K), repeats)
        rows.append({"library": "faiss HNSW", "ef": max(ef, K), f"recall@{K}": index.recall_vs_truth(found, truth),
                     "queries/s": qps, "build s": build_s})
    return rows


def ann_section(name: str, X: np.ndarray, Q: np.ndarray, M: int, ef_construction: int, repeats: int) -> dict:
    exact_qps, truth = index.exact_baselines(X, Q, K, repeats=repeats)
    best_backend = max(exact_qps, key=exact_qps.get)
    hn = index.hnsw_curve(X, Q, truth, EF_VALUES, M, ef_construction, repeats)
    rows = [{"library": "hnswlib", **{c: r[c] for c in ("ef", f"recall@{K}", "queries/s", "build s")}}
            for r in hn.to_dict("records")]
    if index._has_faiss():
        rows += faiss_curve(X, Q, truth, M, ef_construction, repeats)
    for r in rows:
        r["x exact"] = r["queries/s"] / exact_qps[best_backend]
    print(f"\n### ({name}) {len(X):,} vectors x {X.shape[1]}, {len(Q):,} queries, M={M}, ef_construction={ef_construction}\n")
    print(table([{"exact backend": b, "queries/s": q} for b, q in exact_qps.items()], ["exact backend", "queries/s"]))
    print()
    print(table(rows, ["library", "ef", f"recall@{K}", "queries/s", "x exact", "build s"]))
    return {"n": len(X), "n_queries": len(Q), "exact_qps": exact_qps, "best_exact": best_backend, "rows": rows,
            "memory_mb": float(hn["memory MB"].iloc[0])}


def best_qps_at(rows: list[dict], library: str, recall: float) -> float | None:
    ok = [r["queries/s"] for r in rows if r["library"] == library and r[f"recall@{K}"] >= recall]
    return max(ok) if ok else None


def edited(doc: Document) -> Document:
    """The same document with one sentence added to its summary paragraph: a realistic small doc edit."""
    head, sep, rest = doc.text.partition("\n\n")
    return Document(doc.doc_id, f"{head}{sep}This behaviour was revised in this release. {rest}" if sep else doc.text + " (revised)",
                    doc.title, doc.metadata)


def update_section(docs: list[Document], model, share: float, seed: int) -> dict:
    cfg = ChunkConfig()
    rng = np.random.default_rng(seed)
    picked = set(rng.choice(len(docs), size=max(1, round(share * len(docs))), replace=False).tolist())
    changed = [edited(d) if i in picked else d for i, d in enumerate(docs)]
    with tempfile.TemporaryDirectory() as tmp:
        enc = embeddings.Encoder(cache_folder=Path(tmp, "build"), model=model)
        t0 = time.perf_counter()
        idx = retrievers.build_retriever(docs, "dense", cfg, embedder=enc, show_progress=True)
        build_s = time.perf_counter() - t0
        built_embedded = enc.stats["computed"]
        report = idx.sync(changed, show_progress=False)
        t0 = time.perf_counter()
        graph_only = retrievers.build_retriever(changed, "dense", cfg, embedder=enc, show_progress=False)  # warm cache
        graph_only_s = time.perf_counter() - t0
    out = {"n_docs": len(docs), "changed_docs": len(report.changed), "build_s": build_s, "build_embedded": built_embedded,
           "sync_s": report.seconds, "sync_embedded": report.embedded, "rebuild_warm_cache_s": graph_only_s,
           "n_chunks": len(graph_only)}
    print(f"\n### (c) update: {len(report.changed)} of {len(docs)} documents changed ({share:.0%})\n")
    print(table([
        {"step": "full build, empty cache", "seconds": build_s, "chunks embedded": built_embedded},
        {"step": f"sync ({len(report.changed)} docs changed)", "seconds": report.seconds, "chunks embedded": report.embedded},
        {"step": "full rebuild, warm cache (chunking + graph only)", "seconds": graph_only_s, "chunks embedded": 0},
    ], ["step", "seconds", "chunks embedded"]))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--version", default="2.4.6", help="NumPy corpus for (a) and (c)")
    ap.add_argument("--docs", type=int, default=None, help="use only this many documents (default: all)")
    ap.add_argument("--n-synthetic", type=int, default=100_000, help="synthetic vectors for (b)")
    ap.add_argument("--n-queries", type=int, default=1000, help="synthetic queries for (b)")
    ap.add_argument("--M", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3, help="timing repeats; the fastest counts")
    ap.add_argument("--update-share", type=float, default=0.05, help="share of documents changed in (c)")
    ap.add_argument("--skip", default="", help="comma-separated sections to skip: a,b,c")
    ap.add_argument("--json", metavar="PATH", help="also write all numbers as JSON")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))

    import torch

    print(f"# ragft retrieval benchmark\n\n{platform.platform()}, Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, load average at start "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}; faiss {'installed' if index._has_faiss() else 'not installed'}")
    results: dict = {"args": vars(args), "loadavg_start": os.getloadavg()}
    docs = corpus.load_corpus(args.version)
    if args.docs:
        docs = datasets.subset_corpus(docs, [], args.version, args.docs, args.seed)
    encoder = embeddings.get_encoder("minilm")

    if "a" not in skip:
        t0 = time.perf_counter()
        dense = retrievers.build_retriever(docs, "dense", embedder=encoder, show_progress=True,
                                      hnsw=index.HnswConfig(args.M, args.ef_construction))
        print(f"\n(a) indexed {len(docs)} documents as {len(dense)} chunks in {time.perf_counter() - t0:.1f} s "
              f"({encoder.stats['computed']} embedded now, {encoder.stats['cached']} from the cache)")
        queries = [it.question for it in datasets.load_qa(None)] + [d.text.split("\n\n")[1][:300] if "\n\n" in d.text
                                                                     else d.text[:300] for d in docs]
        Q = encoder.encode(queries, show_progress=False)
        results["a"] = ann_section("a: real corpus", dense.vectors(), Q, args.M, args.ef_construction, args.repeats)

    if "b" not in skip:
        data = index.clustered_vectors(args.n_synthetic + args.n_queries, seed=args.seed)
        results["b"] = ann_section("b: synthetic clustered", data[:args.n_synthetic], data[args.n_synthetic:], args.M,
                                   args.ef_construction, args.repeats)

    if "c" not in skip:
        results["c"] = update_section(docs, encoder.model, args.update_share, args.seed)

    print("\n### goals\n")
    goals = []
    if "b" in results:
        b = results["b"]
        best_exact = b["exact_qps"][b["best_exact"]]
        hq = best_qps_at(b["rows"], "hnswlib", 0.99)
        goals.append(("recall@10 >= 0.99 at >= 10x the best exact baseline (b)", hq is not None and hq >= 10 * best_exact,
                      f"hnswlib {hq or 0:,.0f} q/s at recall >= 0.99 vs exact {b['best_exact']} {best_exact:,.0f} q/s "
                      f"= {(hq or 0) / best_exact:.1f}x"))
        fq = best_qps_at(b["rows"], "faiss HNSW", 0.99)
        if fq:
            goals.append(("within 10% of faiss HNSW at equal recall (b, recall >= 0.99)", hq is not None and hq >= 0.9 * fq,
                          f"hnswlib {hq or 0:,.0f} vs faiss {fq:,.0f} q/s = {(hq or 0) / fq:.2f}"))
    if "c" in results:
        c = results["c"]
        goals.append((f"{args.update_share:.0%} update <= 10% of the full build time (c)", c["sync_s"] <= 0.1 * c["build_s"],
                      f"sync {c['sync_s']:.1f} s vs build {c['build_s']:.1f} s = {c['sync_s'] / c['build_s']:.1%}"))
    for goal, ok, detail in goals:
        print(f"- {'PASS' if ok else 'FAIL'}: {goal}: {detail}")
    results["goals"] = [{"goal": g, "pass": ok, "detail": d} for g, ok, d in goals]
    results["loadavg_end"] = os.getloadavg()
    print(f"\nload average at end {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
