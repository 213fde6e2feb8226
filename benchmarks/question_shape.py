"""What a question's shape tells the small model: worked examples in the prompt instead of training, and abstention
asked in the shapes of answerable questions. Dev split, notebook 05's arms and adapters.

1. Worked examples (`pairs.Demonstrations`: the k task pairs nearest to the question, each with its gold passage and
   house answer, as earlier chat turns) for the untuned RAG arm, against the same arm without them, on the same dev
   questions. Besides accuracy, reading rate and format, two counts say what the examples taught: how often the example
   chosen for a question is of the question's own kind (the QA set's question shapes name their kind), and how often an
   answer names its example's fact (a neighbouring function's change copied, e.g. `np.fft.ifft2` gained `out` -> the
   same said of `np.fft.rfft`), with how many of those were graded right.
2. Abstention by shape: every dev unanswerable question (a fabricated name) asked in its own shape (the QA set's three
   abstention phrasings, which no answerable question uses) and in a shape of an answerable question
   (`datasets.in_answerable_shape`: one of `datasets.ANSWERABLE_SHAPES`, chosen by a hash of the name: a removed
   name's "... What is the replacement?", a changed parameter's "Which keyword argument did ... gain"), for every
   arm. The right reply is the abstention in both; the abstention rate per arm and shape, the answerable shape
   against the own one paired on the same names (bootstrap interval and McNemar).
3. With `--abstain-shapes own --abstain-shapes all`: the tuned arms once more with adapters trained on task pairs whose
   abstention questions are half in answerable shapes (`pair_builder.PairSettings.abstain_shapes`), in parts 1 and 2,
   each paired against its arm trained on the pairs of data/train/ ("own").

The arms are notebook 05's (`systems.ArmSettings`: adapters from the adapter cache, or trained, ~13 min a pair set)
over a hybrid index of a 2.4.6 subset (the questions' gold documents plus distractors, as benchmarks/raft_recipe.py),
top 3, 300-character passages, greedy, with no similarity threshold: every question reaches the model, so an
abstention is the model's own. Asserts nothing: one run is a measurement.

Measured once (2026-12-02 evening, the 2-core VM, `--abstain-shapes own --abstain-shapes all`, 4,139 s of which
~25 min training the "all" adapters): part 2, every tuned arm abstained on 36 of 36 fabricated names in the QA set's
phrasing and on 0 of 36 in an answerable one (McNemar 0 / 36 each); base 0.00 / 0.11, RAG 0.00 / 0.14, RAG + 1
example 1.00 / 0.00. Part 1, RAG + 1 example 0.838 [0.74, 0.90] against 0.40 (38 / 3), but answerable +0.10
[-0.02, +0.22] and one-release +0.02: not separable; the example was of the question's kind for 72 of 80, and 4
answers named their example's fact (3 graded right, all changed parameters). Part 3, "all" against "own": RAFT 0.738
against 0.888 (-0.15 [-0.25, -0.06], McNemar 2 / 14, p = 0.004), hybrid 0.438 against 0.750, fine-tuned 0.150
against 0.412, all contradicted (abstention in the QA set's phrasing fell to 0.75 / 0.11 / 0.31; in an answerable
one 0.08 / 0.00 / 0.00).

    .venv/bin/python benchmarks/question_shape.py                      # 80 dev questions, 1 example
    .venv/bin/python benchmarks/question_shape.py --abstain-shapes own --abstain-shapes all
    .venv/bin/python benchmarks/question_shape.py --n-dev 6 --n-unanswerable 3 --steps 2   # smoke: end to end
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd  # noqa: E402

from ragft import (
    evaluation,  # noqa: E402
    systems,  # noqa: E402
)
from ragft.builders.pairs import PairSettings, build_pairs  # noqa: E402
from ragft.core.paths import CURRENT_VERSION  # noqa: E402
from ragft.data.corpus import load_corpus  # noqa: E402
from ragft.data.datasets import in_answerable_shape, load_qa, load_train_pairs, sample, subset_corpus  # noqa: E402
from ragft.evaluation import stats
from ragft.retrieval.retrievers import build_retriever  # noqa: E402
from ragft.training.pairs import Demonstrations, qa_documents  # noqa: E402


def example_use(df: pd.DataFrame, arm: str, demos: Demonstrations, items) -> pd.DataFrame:
    """Per answered question of `arm`: the kind of its nearest example, and whether the answer names that example's
    fact (answerable kinds only: an abstention names none)."""
    by_id = {it.id: it for it in items}
    rows = []
    for r in evaluation.frame_records(df[df.arm == arm]):
        example = demos.select(by_id[r["id"]].question)[0]
        facts = [f for f in example.get("facts") or () if f]
        copied = r["kind"] != "unanswerable" and any(f"`{f}`" in r["answer"] or f"{f}=" in r["answer"] for f in facts)
        rows.append({"kind": r["kind"], "example kind": example["kind"], "copied": copied, "correct": r["correct"]})
    return pd.DataFrame(rows)


def add_dev_arguments(ap: argparse.ArgumentParser) -> None:
    """The dev sample's options, shared with benchmarks/name_check.py."""
    ap.add_argument("--n-dev", type=int, default=80, help="dev questions for part 1 (kind-stratified sample)")
    ap.add_argument("--n-docs", type=int, default=300, help="documents in the retrieval subset")
    ap.add_argument("--n-unanswerable", type=int, default=None, help="dev unanswerable names for part 2 (default: all)")
    ap.add_argument("--steps", type=int, default=60, help="training steps per adapter (notebook 05's workshop: 60)")


def dev_parts(args):
    """(settings, dev questions, dev fabricated names, hybrid retriever over their 2.4.6 subset): notebook 05's arm
    settings without a similarity threshold, so that every abstention is the model's own."""
    settings = systems.ArmSettings(retrieval=systems.RetrievalSettings(threshold=None),
                                   training=systems.TrainingSettings(train_steps=args.steps))
    items = sample(load_qa("dev"), args.n_dev)
    unanswerable = [it for it in load_qa("dev") if it.kind == "unanswerable"][: args.n_unanswerable]
    docs = subset_corpus(load_corpus(CURRENT_VERSION), items + unanswerable, CURRENT_VERSION, args.n_docs)
    return settings, items, unanswerable, build_retriever(docs, mode="hybrid", embedder="minilm", show_progress=False)


def paired(df, a, b, col="correct", subset="all") -> str:
    """Arm a against arm b on the same questions: the difference, its 95% interval, McNemar and the verdict."""
    c = stats.compare(*evaluation.paired_values(df, a, b, col=col, subset=subset))
    return (f"{c.diff:+.3f} [{c.ci[0]:+.3f}, {c.ci[1]:+.3f}], McNemar {c.n10} / {c.n01}, p = {c.p_mcnemar:.3g}: "
            f"{c.verdict}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_dev_arguments(ap)
    ap.add_argument("--examples", type=int, default=1, help="worked examples per question")
    ap.add_argument("--abstain-shapes", action="append", choices=["own", "all"], default=[],
                    help="the tuned arms' pair sets (repeat; default: own, the pairs of data/train/)")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    settings, items, unanswerable, retriever = dev_parts(args)
    task_pairs = load_train_pairs(systems.TRAINING_SETS[settings.training.pairs][0]())[0]
    t0 = time.perf_counter()
    demos = Demonstrations(task_pairs, build_retriever(load_corpus(CURRENT_VERSION), mode="bm25"), k=args.examples,
                           passage_chars=settings.retrieval.passage_chars, exclude_docs=qa_documents())
    print(f"{len(demos.pairs)} examples to choose from ({time.perf_counter() - t0:.1f} s); {len(items)} dev questions, "
          f"{len(unanswerable)} dev unanswerable names; hybrid index over {args.n_docs} NumPy {CURRENT_VERSION} documents",
          flush=True)
    arms, tuned = [], {}  # tuned: pair set -> its fine-tuned, hybrid and raft arm names
    for shapes in args.abstain_shapes or ["own"]:
        pairs = task_pairs if shapes == "own" else build_pairs(PairSettings(abstain_shapes=shapes))
        adapters = systems.tuned_adapters(settings, pairs=pairs)
        found = systems.arms_for(retriever, adapters, settings, retriever_label="hybrid")
        if not arms:
            rag = next(a for a in found if a.name == "rag")
            arms += [a for a in found if a.adapter is None] + [rag.replace(name=f"rag + {args.examples} example(s)",
                                                                           examples=demos)]
        named = [a.replace(name=f"{a.name}, abstain shapes {shapes}") for a in found if a.adapter is not None]
        tuned[shapes] = [a.name for a in named]
        arms += named
    rag, with_examples = arms[1], arms[2]
    pool = systems.ModelPool()
    pd.set_option("display.width", 220)

    # 1. every arm on the dev questions; worked examples for the untuned RAG arm
    df = systems.compare(items, [a for a in arms if a.name != "base"], pool=pool, show_progress=True)
    print("\n1. dev questions\n" + evaluation.summarize_arms(df, metrics=evaluation.ARMS_TABLE).round(3).to_string())
    print("accuracy by kind:\n" + df.groupby(["arm", "kind"]).correct.mean().unstack().round(2).to_string())
    for subset in ("all", "answerable", "one_release"):
        print(f"{with_examples.name} - rag, {subset} questions: {paired(df, with_examples.name, rag.name, subset=subset)}")
    use = example_use(df, with_examples.name, demos, items)
    print("the nearest example's kind, by the question's kind:\n"
          + pd.crosstab(use["kind"], use["example kind"]).to_string())
    copied = use[use.copied]
    print(f"answers naming their example's fact: {len(copied)} of {int((use.kind != 'unanswerable').sum())} "
          f"answerable ({int(copied.correct.sum())} of them graded right); by kind "
          f"{copied.kind.value_counts().to_dict()}")
    for shapes, names in tuned.items():
        if shapes != "own":
            for name, own in zip(names, tuned["own"], strict=True):
                print(f"{name} - {own}: {paired(df, name, own)}")

    # 2. abstention by shape
    frames = []
    for shape in ("own shape", "answerable shape"):
        asked = unanswerable if shape == "own shape" else [in_answerable_shape(it) for it in unanswerable]
        out = systems.compare(asked, arms, pool=pool, show_progress=True)
        out["shape"] = shape
        frames.append(out)
    shapes_df = pd.concat(frames)
    print("\n2. abstention on fabricated names, by the question's shape (share abstained)\n"
          + shapes_df.pivot_table(index="arm", columns="shape", values="abstained", sort=False).round(2).to_string())
    for arm in [a.name for a in arms]:
        own = shapes_df[(shapes_df.arm == arm) & (shapes_df["shape"] == "own shape")]
        other = shapes_df[(shapes_df.arm == arm) & (shapes_df["shape"] == "answerable shape")]
        both = pd.concat([other.assign(arm="answerable shape"), own.assign(arm="own shape")])
        print(f"  {arm}, answerable shape - own shape: {paired(both, 'answerable shape', 'own shape', col='abstained')}")
    print(f"total {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
