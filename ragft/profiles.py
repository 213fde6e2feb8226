"""Run profiles: how big each notebook's experiment is. A notebook's `PROFILE` parameter picks one.

smoke    : seconds per cell; what the tests execute. Tiny corpus subset, a handful of questions, a few training steps.
workshop : the report. Minutes per notebook on a 2-core laptop.
full     : everything (whole corpora, whole splits); for researchers with time or a GPU.
Not a config system: notebooks read these numbers, and may override any of them through their own parameters.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    name: str
    n_docs: int | None  # documents per corpus version (gold docs of the chosen questions + distractors); None = all
    n_questions: int | None  # questions per experiment; None = the whole split
    max_new_tokens: int  # generation length; house answers need about 60 tokens
    train_steps: int  # optimizer steps of QLoRA training
    sweep: bool  # run parameter sweeps (chunk size, ef, lora_r, ...)


PROFILES = {
    # smoke gives up statistical meaning for speed: ~8 questions cannot separate systems, only prove the code runs.
    "smoke": Profile("smoke", n_docs=150, n_questions=8, max_new_tokens=64, train_steps=4, sweep=False),
    # workshop: every claim measured on a sample large enough to show the effect (goal ~20 minutes for all notebooks;
    # measured cold on 2 cores: 70 minutes, see the README). 40 training steps reach only 75% format compliance.
    "workshop": Profile("workshop", n_docs=None, n_questions=40, max_new_tokens=80, train_steps=60, sweep=True),
    "full": Profile("full", n_docs=None, n_questions=None, max_new_tokens=96, train_steps=300, sweep=True),
}


def get(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown PROFILE {name!r}: choose one of {', '.join(PROFILES)}") from None
