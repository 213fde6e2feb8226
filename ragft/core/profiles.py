"""Run profiles: how big each notebook's experiment is, every number in one place. A notebook's `PROFILE` parameter
picks one through `resolve(PROFILE, **overrides)`.

smoke    : seconds per cell; what the tests execute. Tiny corpus subsets, a handful of questions, a few training steps.
workshop : the report. Minutes per notebook on a 2-core laptop.
full     : everything (whole corpora, whole splits); for researchers with time or a GPU.
Not a config system: a notebook's own parameters override any of these numbers (0 or None keeps the profile's).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

# House answers are short and end at their `Source:` line, where generation stops (`generation.STOP_AT_ANSWER_END`):
# max_new_tokens is only a cap for an answer that never reaches that line. Measured in SmolLM2 tokens
# (benchmarks/answer_lengths.py): house-style training answers median 76, p90 102, p95 111; the abstention reply 35.
ANSWER_MAX_NEW_TOKENS = 112
# Passages a retrieving system answers from: 2 beat 3 on dev for every retrieving arm (docs/decisions.md, top_k).
DEFAULT_TOP_K = 2


@dataclass(frozen=True)
class Profile:
    name: str
    n_docs: int | None  # documents per corpus version (gold docs of the chosen questions + distractors); None = all
    n_questions: int | None  # questions per experiment; None = the whole split
    max_new_tokens: int  # cap on an answer's length; generation stops at the answer's end (see ANSWER_MAX_NEW_TOKENS)
    train_steps: int  # optimizer steps of QLoRA training
    sweep: bool  # run parameter sweeps (chunk size, ef, lora_r, ...)
    # notebook 01: documents cut and embedded by each chunking strategy and size
    chunking_docs: int | None = None
    # notebook 02: clustered vectors for HNSW at scale; documents per version in the update experiment (embedded cold)
    n_synthetic: int = 30000
    n_update_docs: int | None = None
    pg_queries: int | None = None  # queries timed against PostgreSQL + pgvector (None: all); each is one SQL round trip
    timing_repeats: int = 3  # best-of-n timings; smoke times once
    # notebook 04: chunks embedded to price the embedding side of a knowledge update
    n_embed_sample: int = 64
    # notebooks 05 and 06: questions and documents of the arms table and of the dashboard's menu
    arms_questions: int | None = None
    arms_docs: int | None = None
    menu_questions: int | None = None
    menu_docs: int | None = None
    # notebooks 05 and 06: training draws of the RAFT adapter (seeds seed, seed + 1, ...); with more than one, the best
    # on `draw_dev_questions` dev questions over `draw_dev_docs` documents becomes the RAFT arm (systems.raft_draws, systems.DrawSettings.of)
    raft_draws: int = 1
    draw_dev_questions: int = 80
    draw_dev_docs: int | None = 300
    # notebook 05's ablations (contrast, change notes, other draws, question shape, name check): each re-answers the
    # questions with more arms, so the learner's run leaves them to the research run
    ablations: bool = True
    # notebook 04's LoRA rank x steps sweep: one more training per rank
    train_sweep: bool = False


PROFILES = {
    # smoke gives up statistical meaning for speed: ~8 questions cannot separate systems, only prove the code runs.
    # 05 and 06 go smaller still (one question per kind, 80 and 40 documents) because they train two adapters.
    "smoke": Profile("smoke", n_docs=150, n_questions=8, max_new_tokens=64, train_steps=4, sweep=False,
                     chunking_docs=40, n_synthetic=5000, n_update_docs=16, pg_queries=200, timing_repeats=1, n_embed_sample=16,
                     arms_questions=5, arms_docs=80, menu_questions=5, menu_docs=40,
                     raft_draws=2, draw_dev_questions=5, draw_dev_docs=40),
    # workshop: what a learner runs, sized for minutes per notebook on 2 cores (the goal: 8 min each, cold).
    # 24 kind-stratified questions and one training draw: its intervals are wide, and the notebooks say so; the verdict
    # is the research run's (full) and the locked test's (`make final`). 40 training steps reach only 75% format compliance.
    "workshop": Profile("workshop", n_docs=None, n_questions=24, max_new_tokens=ANSWER_MAX_NEW_TOKENS, train_steps=60, sweep=True,
                        chunking_docs=120, n_update_docs=150, menu_questions=24,
                        # 300 documents per version: the sync, and the fine-tuned arm's fair retraining on every fact
                        # the sync brings, stay a few minutes
                        arms_questions=24, arms_docs=300, raft_draws=1, ablations=False),
    # full: the research run the teacher hands out (whole splits, three draws, every ablation); hours on 2 cores
    "full": Profile("full", n_docs=None, n_questions=None, max_new_tokens=ANSWER_MAX_NEW_TOKENS, train_steps=300, sweep=True,
                    raft_draws=3, train_sweep=True),
}


def get(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown PROFILE {name!r}: choose one of {', '.join(PROFILES)}") from None


def resolve(name: str, **overrides) -> Profile:
    """The profile `name` with the notebook's own settings on top; an override of 0, False or None keeps the profile's value.

    >>> resolve("smoke", n_questions=20).n_questions, resolve("smoke", n_questions=0).n_questions
    (20, 8)
    """
    known = {f.name for f in fields(Profile)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown profile setting(s) {', '.join(unknown)}: choose from {', '.join(sorted(known - {'name'}))}")
    return replace(get(name), **{k: v for k, v in overrides.items() if v not in (0, None)})
