"""`ragft train`: a LoRA adapter on the built-in or the user's own pairs (or the one in the cache), printed for
`ragft ask --adapter`; with --raft each pair gets BM25 passages, from the user's own index with --index.

Does not train (`ragft.training.finetune`) or make RAFT pairs (`ragft.training.pairs`): it prepares and prints.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from ..core.paths import OLD_VERSION, task_pairs_path
from ..data.datasets import load_train_pairs
from ..generation.models import DEFAULT_LLM
from ..retrieval.hnsw import DenseIndex
from ..retrieval.pgvector.pointer import read_pointer
from ..retrieval.retrievers import retriever_from_index
from ..systems.arms import AnswerSettings, ArmSettings, RaftRecipe, TrainingSettings
from ..training import finetune
from ..training.draws import raft_data
from ..training.launch import process_state
from ..training.pairs import NO_ORACLE_TARGETS, qa_documents, raft_pairs
from .cli_common import HelpFormatter
from .inputs import CliError, number

TRAIN_EXAMPLES = """Examples:
  ragft train --raft                                    # the evaluated RAFT adapter's recipe on the built-in pairs
  ragft train --raft --pairs mine.jsonl --index my.idx  # your pairs, distractors from your own index
  ragft train --pairs mine.jsonl --steps 120 --lr 1e-3
"""


def register_train(sub) -> None:
    p = sub.add_parser("train", help="train a LoRA adapter (or take it from the cache) on the built-in or your own pairs",
                       formatter_class=HelpFormatter, epilog=TRAIN_EXAMPLES,
                       description="Train a LoRA adapter on prompt/completion pairs (the built-in task pairs, "
                       "or your JSONL) and print its folder, for `ragft ask --adapter`. Runs are cached by their "
                       "data and settings (a repeat returns at once) and resume after an interruption.")
    p.add_argument("--pairs", metavar="FILE.jsonl", default=None,
                   help="your pairs: one JSON object a line with prompt/question and completion/answer "
                   "(default: data/train/task_pairs.jsonl, the evaluation's question shapes on other APIs)")
    p.add_argument("--raft", action="store_true", help="give each pair 3 BM25 passages, as the RAFT arm trains (the "
                   "gold passage in 80%% of answerable pairs); from --index if given, else from the NumPy 2.4.6 docs "
                   "for the built-in pairs and the NumPy 1.26.4 docs for --pairs FILE (default: off)")
    p.add_argument("--index", metavar="PATH", default=None,
                   help="with --raft: an index folder made by `ragft index` whose chunks give the passages and "
                        "distractors (default: none, the NumPy docs)")
    p.add_argument("--no-oracle-target", choices=NO_ORACLE_TARGETS, default=None,
                   help="with --raft: what a pair without its gold passage is trained to say: the real 'answer' (as "
                   f"published) or 'abstain' (default: {RaftRecipe.no_oracle_target})")
    p.add_argument("--steps", type=number(int, "--steps", low=1), default=60, help="optimizer steps (default: %(default)s)")
    # 0 would train nothing (and used to fall back to the default silently); above 1 the adapter's weights diverge
    p.add_argument("--lr", type=number(float, "--lr", above=0, high=1, why=": try 1e-4 to 1e-2"), default=None,
                   help=f"learning rate in (0, 1] (default: {finetune.TrainSettings.lr:g}; with --raft "
                        f"{RaftRecipe.lr:g})")
    p.add_argument("--lora-r", type=number(int, "--lora-r", low=1), default=16, help="adapter rank (default: %(default)s)")
    p.add_argument("--lora-alpha", type=number(int, "--lora-alpha", low=1, why=": the adapter is scaled by alpha / r, "
                                                                           "so 0 would switch it off"),
                   default=32, help="adapter scale numerator (default: %(default)s)")
    p.add_argument("--model", default=DEFAULT_LLM, help="base LLM by registry name (default: %(default)s)")
    p.add_argument("--skip-bad-lines", action="store_true",
                   help="skip malformed lines of --pairs instead of stopping (default: off)")
    p.add_argument("--quiet", action="store_true", help="no progress bar (default: off)")
    p.set_defaults(func=cmd_train)


def raft_training_pairs(pairs: Sequence[dict], arm: ArmSettings, training_set: str | None, index: str | None = None,
                        show_progress: bool = False) -> list[dict]:
    """The RAFT pairs `ragft train --raft` trains on: `training.draws.raft_data`'s (BM25 passages from the NumPy docs),
    or, with `index`, BM25 passages and distractors from that index folder's chunks (never a document the QA set asks
    about when the pairs are the built-in task pairs)."""
    if index is None:
        return raft_data(pairs, arm, training_set, show_progress=show_progress)
    if read_pointer(index) is not None:
        raise CliError(f"--index {index} is a pgvector index: give an index folder made by `ragft index` (hnswlib)")
    if not Path(index).is_dir():
        raise CliError(f"no index at {index}: build one with `ragft index SOURCE --out {index}`")
    retriever = retriever_from_index(DenseIndex.load(index), "bm25")
    source = list(pairs[: arm.raft_examples])
    exclude = qa_documents() if training_set == "task" else ()
    return raft_pairs(source, retriever, arm.raft(), show_progress=show_progress, exclude_docs=exclude)


def cmd_train(args) -> int:
    """Train (or load from the cache) the adapter; print its folder on stdout and what the run took on stderr."""
    if args.pairs and Path(args.pairs).is_dir():
        raise CliError(f"--pairs {args.pairs} is a folder: give a JSONL file of prompt/completion pairs")
    if args.pairs and not Path(args.pairs).is_file():
        raise CliError(f"no such pairs file: {args.pairs}")
    if args.index and not args.raft:
        raise CliError("--index gives RAFT passages: add --raft")
    pairs, report = load_train_pairs(args.pairs or task_pairs_path(), on_error="skip" if args.skip_bad_lines else "raise")
    if not pairs:
        raise CliError(f"no usable pairs in {args.pairs or 'the built-in set'}")
    for where, why in report.problems:
        print(f"ragft: skipped {where}: {why}", file=sys.stderr)
    train = finetune.TrainSettings(steps=args.steps, **({"lr": args.lr} if args.lr is not None else {}))
    if args.raft:  # the RAFT arm's settings (systems.ArmSettings): one pair per example, longer prompts
        arm = ArmSettings(answer=AnswerSettings(llm=args.model),
                          training=TrainingSettings(lora_r=args.lora_r, lora_alpha=args.lora_alpha, train_steps=args.steps),
                          recipe=RaftRecipe(**({"no_oracle_target": args.no_oracle_target} if args.no_oracle_target else {})))
        pairs = raft_training_pairs(pairs, arm, None if args.pairs else "task", args.index, show_progress=not args.quiet)
        if args.index:
            print(f"RAFT passages from {args.index}", file=sys.stderr)
        elif args.pairs:
            print(f"RAFT passages from the NumPy {OLD_VERSION} docs (give --index PATH for your own)", file=sys.stderr)
        train = replace(arm.raft_train(), **({"lr": args.lr} if args.lr is not None else {}))
    lora = finetune.LoraSettings(lora_r=args.lora_r, lora_alpha=args.lora_alpha)
    if args.quiet:  # transformers' "Loading weights" bar too (imported here: it takes a second to import)
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    path = finetune.train_or_load_adapter(pairs, lora, train, model_name=args.model, show_progress=not args.quiet,
                                          verbose=not args.quiet)
    if not process_state().is_main_process:  # under a launcher (accelerate, torchrun): one process reports
        return 0
    log = finetune.read_training_log(path)
    print(f"{len(pairs)} pairs, {log['steps']} steps, {log['seconds_per_step']:.1f} s/step when trained; "
          f"loss {log['losses'][0]:.3f} -> {log['losses'][-1]:.3f}", file=sys.stderr)
    print(path)
    return 0
