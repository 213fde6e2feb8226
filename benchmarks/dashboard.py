"""The dashboard's wait, measured: five arms (base, RAG, fine-tuned, hybrid, RAFT) on one question, as notebook 06 asks
it (`systems.ask`, one question, no batching), cold (models loaded on first use) and warm (models in memory, the answer
not in the answer cache), per engine.

Notebook 06's settings and adapters (`systems.ArmSettings`, the adapter cache returns 05's adapters; they are trained
first when missing, which takes minutes). The warm questions are dev questions the answer cache is bypassed for, so
every arm generates. Asserts nothing: one run is a measurement; compare engines within a run.

    .venv/bin/python benchmarks/dashboard.py                          # transformers
    .venv/bin/python benchmarks/dashboard.py --engine ortgenai        # also ONNX Runtime GenAI fp32 (extra ortgenai)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ragft import systems  # noqa: E402
from ragft.core.paths import CURRENT_VERSION  # noqa: E402
from ragft.data import corpus, datasets  # noqa: E402
from ragft.generation import engines  # noqa: E402
from ragft.retrieval.retrievers import build_retriever  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engine", action="append", choices=engines.ENGINES, default=[],
                    help="engine(s) besides transformers (repeat)")
    ap.add_argument("--questions", type=int, default=4, help="warm questions per engine (the median is reported)")
    ap.add_argument("--n-docs", type=int, default=300, help="documents in the index (notebook 06's workshop menu)")
    args = ap.parse_args(argv)
    settings = systems.ArmSettings()
    questions = datasets.sample(datasets.load_qa("dev"), args.questions + 1, seed=1)
    docs = datasets.subset_corpus(corpus.load_corpus(CURRENT_VERSION), questions, CURRENT_VERSION, args.n_docs)
    fused = build_retriever(docs, mode="hybrid", embedder="minilm", show_progress=False)
    arms = systems.arms_for(fused, systems.tuned_adapters(settings, show_progress=True), settings, "hybrid")
    print(f"{len(arms)} arms ({', '.join(a.name for a in arms)}); {len(docs)} documents; "
          f"{args.questions} warm questions; max_new_tokens {settings.answer.max_new_tokens}")
    results = {}
    for engine in ["transformers", *args.engine]:
        pool = systems.ModelPool(engine=engine)
        t0 = time.perf_counter()
        systems.ask(questions[0], arms, pool=pool, cache=False)
        cold = time.perf_counter() - t0
        warm, tokens, gated = [], [], 0
        for q in questions[1:]:
            t0 = time.perf_counter()
            rows = systems.ask(q, arms, pool=pool, cache=False)
            warm.append(time.perf_counter() - t0)
            tokens += [int(t) for t, g in zip(rows["prompt_tokens"], rows["gated"], strict=True) if not g]
            gated += int(rows["gated"].sum())  # the threshold abstained: no prompt, no generation
        results[engine] = statistics.median(warm)
        print(f"[{engine}] first question (models loaded on first use) {cold:.1f} s; five arms warm: median "
              f"{results[engine]:.1f} s (min {min(warm):.1f}, max {max(warm):.1f}); mean prompt "
              f"{statistics.mean(tokens) if tokens else 0:.0f} tokens over the {len(tokens)} answers generated "
              f"({gated} abstained by the threshold)", flush=True)
    for engine, s in results.items():
        print(f"{engine}: {s:.1f} s for five arms warm ({results['transformers'] / s:.2f}x transformers)")


if __name__ == "__main__":
    main()
