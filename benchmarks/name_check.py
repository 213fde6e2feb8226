"""A system check instead of a learned phrasing: abstain when no retrieved passage documents the API the question
names (`systems.System.name_check`, `retrievers.undocumented_names`). Dev split, notebook 05's retrieving arms.

The tuned arms abstain on a fabricated name only when it is asked in the QA set's own abstention phrasings
(benchmarks/question_shape.py: 36 of 36 dev names, and 0 of 36 asked like an answerable question). A 135M reader cannot
see that its passages are about other functions; a string check can: the question names `np.X` in backticks, and no
retrieved passage is the document of numpy.X (or its removal notice). Then the system replies with the house
abstention without generating, as the similarity threshold does.

Measured here, for RAG, hybrid and RAFT each with and without the check, paired on the same questions:
1. the 80 dev questions of question_shape.py (kind-stratified): accuracy, answerable accuracy (what the check may cost:
   an answerable question whose named document retrieval missed is now abstained on), abstention recall / precision;
   the answerable questions the check stopped, with their kinds and how many were right without it;
2. every dev fabricated name asked like an answerable question (`datasets.in_answerable_shape`): abstention.

Same index, sample and settings as question_shape.py (hybrid over a 2.4.6 subset of 300 documents, top 3, 300-character
passages, greedy, no similarity threshold), so the answers the check lets through come from the answer cache when that
benchmark ran on this machine. Asserts nothing: one run is a measurement.

Measured once (2026-12-03, the 2-core VM, 21 s: every answer the check let through came from the answer cache).
Part 1, 80 dev questions (30 of them fabricated names in the QA set's phrasing): RAG 0.400 -> 0.775 (+0.375 [+0.275,
+0.487], McNemar 30 / 0), abstention recall 0.00 -> 1.00 at precision 0.91; hybrid 0.750 and RAFT 0.888 unchanged
(they had abstained on those 30 already, by the phrasing); answerable accuracy unchanged for all three (+0.000,
McNemar 0 / 0): the check stopped one answerable question, `removed:in1d`, whose document retrieval had missed and
which every arm had answered wrong. Part 2, the 36 dev fabricated names asked like answerable questions: abstained
RAG 0.14 -> 1.00 (31 / 0), hybrid 0.00 -> 1.00 (36 / 0), RAFT 0.00 -> 1.00 (36 / 0).

With the arms' calibrated threshold (`--threshold 0.7014`, 2026-12-07, 1,198 s, the phrasing-balanced QA set): rag
0.575 -> 0.688 (9 / 0), hybrid 0.438 -> 0.538 (8 / 0), raft 0.700 -> 0.775 (6 / 0), answerable accuracy unchanged,
abstention recall -> 1.00 at precision 0.86-0.91; the check without the threshold: raft 0.812, rag 0.712, hybrid 0.538.
The arms now carry the check (docs/decisions.md, name_check).

    .venv/bin/python benchmarks/name_check.py
    .venv/bin/python benchmarks/name_check.py --threshold 0.7014   # with the arms' threshold, and the check without it
    .venv/bin/python benchmarks/name_check.py --n-dev 6 --n-unanswerable 3 --steps 2   # smoke: end to end
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import pandas as pd  # noqa: E402
from question_shape import add_dev_arguments, dev_parts, paired  # noqa: E402

from ragft import (
    evaluation,  # noqa: E402
    systems,  # noqa: E402
)
from ragft.core.paths import CURRENT_VERSION  # noqa: E402
from ragft.data.datasets import in_answerable_shape  # noqa: E402

CHECK = " + name check"
ALONE = ", no threshold"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_dev_arguments(ap)
    ap.add_argument("--threshold", type=float, default=None,
                    help="the arms' similarity threshold (notebook 05's: calibrated on dev); adds the check without it")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    settings, items, unanswerable, retriever = dev_parts(args)
    found = systems.arms_for(retriever, systems.tuned_adapters(settings), settings, retriever_label="hybrid")
    plain = [a.replace(threshold=args.threshold, name_check=False) for a in found if a.retriever is not None]  # rag, hybrid, raft
    arms = [x for a in plain for x in (a, a.replace(name=a.name + CHECK, name_check=True))]
    if args.threshold is not None:  # does the check replace the threshold, or add to it?
        arms += [a.replace(name=a.name + CHECK + ALONE, name_check=True, threshold=None) for a in plain]
    pool = systems.ModelPool()
    pd.set_option("display.width", 220)
    print(f"{len(items)} dev questions, {len(unanswerable)} dev fabricated names; hybrid index over {args.n_docs} NumPy "
          f"{CURRENT_VERSION} documents; arms {[a.name for a in arms]}", flush=True)

    # 1. the dev questions
    df = systems.compare(items, arms, pool=pool, show_progress=True)
    print("\n1. dev questions\n" + evaluation.summarize_arms(df, metrics=evaluation.ARMS_TABLE).round(3).to_string())
    for a in plain:
        for subset in ("all", "answerable"):
            print(f"{a.name}{CHECK} - {a.name}, {subset}: {paired(df, a.name + CHECK, a.name, subset=subset)}")
            if args.threshold is not None:
                print(f"{a.name}{CHECK}{ALONE} - {a.name}, {subset}: "
                      f"{paired(df, a.name + CHECK + ALONE, a.name, subset=subset)}")
                print(f"{a.name}{CHECK}{ALONE} - {a.name}{CHECK}, {subset}: "
                      f"{paired(df, a.name + CHECK + ALONE, a.name + CHECK, subset=subset)}")
    df = df[~df["arm"].str.endswith(ALONE)]
    stopped = df[df["arm"].str.endswith(CHECK) & (df["gate"] == "name")]
    without = df[~df["arm"].str.endswith(CHECK)].set_index(["arm", "id"])["correct"]
    stopped = stopped.assign(base_arm=stopped["arm"].str.removesuffix(CHECK))
    stopped["right without"] = [bool(without[(a, i)]) for a, i in zip(stopped["base_arm"], stopped["id"], strict=True)]
    print("stopped by the check, by kind (count; right without the check):")
    print(stopped.groupby(["base_arm", "kind"]).agg(stopped=("id", "size"), right_without=("right without", "sum"))
          .to_string())
    answerable_stops = stopped[stopped["kind"] != "unanswerable"]
    if len(answerable_stops):
        print("answerable questions stopped (gold retrieved?):")
        print(answerable_stops[["base_arm", "id", "gold_retrieved", "right without"]].to_string(index=False))

    # 2. fabricated names asked like answerable questions
    reshaped = systems.compare([in_answerable_shape(it) for it in unanswerable], arms, pool=pool, show_progress=True)
    print("\n2. fabricated names asked like answerable questions: share abstained")
    print(reshaped.groupby("arm", sort=False)["abstained"].mean().round(3).to_string())
    for a in plain:
        print(f"  {a.name}{CHECK} - {a.name}: {paired(reshaped, a.name + CHECK, a.name, col='abstained')}")
    print(f"total {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
