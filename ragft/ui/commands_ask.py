"""`ragft ask`: answer one question from an index, as one of the evaluated arms (`--system raft|rag|hybrid|base|
fine-tuned`, with the arms' passages, threshold, contrast and adapters, trained once or taken from the cache) or as the
flags say; prints the answer, its sources and where the time went.

Does not define the arms (`ragft.systems.arms`), train (`ragft.training`) or retrieve and generate
(`ragft.systems.pipeline`): it resolves settings and prints.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from ..core import profiles
from ..core.profiles import ANSWER_MAX_NEW_TOKENS, DEFAULT_TOP_K
from ..generation.decoding import PASSAGE_ORDER, PASSAGE_ORDERS
from ..generation.models import DEFAULT_LLM, ModelUnavailable, load_llm
from ..retrieval.embeddings import get_encoder
from ..retrieval.hnsw import DenseIndex
from ..retrieval.retrievers import MODES, retriever_from_index
from ..systems.arms import AnswerSettings, ArmSettings, DrawSettings, RetrievalSettings, TrainingSettings
from ..systems.pipeline import RagConfig, RagPipeline
from ..systems.system import ARMS
from ..training.adapters import check_adapter_files, load_adapter
from .cli_common import PATH_FIX, HelpFormatter, add_backend_args, pgvector_target
from .inputs import CliError, check_text, number

ASK_PROFILE = "workshop"  # the report's run: its adapters are in the cache after `make report`
TUNED_ROLE = {"fine-tuned": "sft", "hybrid": "sft", "raft": "raft"}  # which adapter each tuned arm answers with
RETRIEVING = ("rag", "hybrid", "raft")

ASK_EXAMPLES = """Examples:
  ragft ask numpy.idx "What replaces np.float_ in NumPy 2?" --system raft
  ragft ask numpy.idx "What replaces np.float_ in NumPy 2?" --system rag --json
  ragft ask my.idx "How do I rotate the keys?" --adapter ADAPTER_DIR --name-check
"""


@dataclass(frozen=True)
class AskPreset:
    """How `ragft ask` answers: the settings of one arm (`resolve_system`) or of the flags alone."""

    system: str  # an arm's name, or "custom" (the flags alone)
    retrieval: bool
    adapter_role: str | None  # "sft" | "raft": the tuned adapter the arm answers with; None: the base model
    top_k: int
    threshold: float | None
    passage_chars: int | None
    contrast: float
    max_new_tokens: int
    tuned: bool  # a tuned model gets no system prompt (it learned the format), an untuned one is told it
    name_check: bool = False


def arm_settings(profile: str = ASK_PROFILE, model: str = DEFAULT_LLM) -> ArmSettings:
    """The arms' settings as the report's notebook builds them for `profile`, except the threshold: a fixed
    `RetrievalSettings.threshold` (0.5) where the notebook calibrates one on dev questions of the NumPy docs."""
    p = profiles.resolve(profile)
    return ArmSettings(answer=AnswerSettings(llm=model, max_new_tokens=p.max_new_tokens),
                       training=TrainingSettings(train_steps=p.train_steps), draws=DrawSettings.of(p))


def resolve_system(name: str, settings: ArmSettings) -> AskPreset:
    """The arm `name` of `systems.arms_for(..., settings)` as `ragft ask` answers with it (no model is loaded)."""
    if name not in ARMS:
        raise CliError(f"--system must be one of {', '.join(ARMS)}, not {name!r}")
    r, a = settings.retrieval, settings.answer
    retrieval = name in RETRIEVING
    role = TUNED_ROLE.get(name)
    return AskPreset(name, retrieval, role, r.top_k, r.threshold if retrieval else None, r.passage_chars,
                     a.raft_contrast if name == "raft" else 0.0,
                     settings.raft_max_new_tokens if name == "raft" else a.max_new_tokens, role is not None,
                     r.name_check and retrieval)


def flags_preset(args) -> AskPreset:
    """Without --system: plain RAG (or the base model with --no-retrieval), tuned when --adapter is given."""
    tuned = bool(args.adapter)
    return AskPreset("custom", not args.no_retrieval, None, DEFAULT_TOP_K, RetrievalSettings.threshold,
                     RetrievalSettings.passage_chars if tuned else None,
                     AnswerSettings.raft_contrast if tuned else 0.0, ANSWER_MAX_NEW_TOKENS, tuned)


def ask_preset(args) -> AskPreset:
    """The preset of --system (or of the flags), with every flag the user gave on top."""
    if args.system:
        preset = resolve_system(args.system, arm_settings(args.profile, args.model))
        if args.no_retrieval and preset.retrieval:
            raise CliError(f"--no-retrieval contradicts --system {args.system}, which retrieves: use --system base "
                           "or fine-tuned")
        if args.adapter and not preset.tuned:
            raise CliError(f"--adapter contradicts --system {args.system}, which answers with the untuned model")
    else:
        preset = flags_preset(args)
    given = {"top_k": args.top_k, "contrast": args.contrast, "max_new_tokens": args.max_new_tokens}
    preset = replace(preset, **{k: v for k, v in given.items() if v is not None})
    if args.threshold is not None:
        preset = replace(preset, threshold=None if args.threshold == "off" else args.threshold)
    return replace(preset, name_check=preset.name_check if args.name_check is None else args.name_check)


def threshold_arg(text: str):
    """--threshold: a finite number, or "off"."""
    return "off" if text.strip().lower() == "off" else number(float, "--threshold")(text)


threshold_arg.__name__ = "float"


def register_ask(sub) -> None:
    p = sub.add_parser(
        "ask", help="answer a question from an index as one of the evaluated systems, with sources and timings",
        formatter_class=HelpFormatter, epilog=ASK_EXAMPLES,
        description="Retrieve the top k chunks for QUESTION from INDEX, put them in a numbered, delimited prompt and "
                    "generate an answer greedily. --system answers as one of the evaluated arms; the flags below "
                    "change any of its settings.")
    p.add_argument("index", metavar="INDEX", help="index made by `ragft index`: its folder or pgvector pointer file "
                   "(not read with --no-retrieval or --system base / fine-tuned)")
    p.add_argument("question", metavar="QUESTION", help="the question, in quotes")
    k, x, alpha = RetrievalSettings.top_k, RetrievalSettings.threshold, AnswerSettings.raft_contrast
    p.add_argument("--system", choices=ARMS, default=None,
                   help=f"answer as this arm: raft (the RAFT adapter, {k} passages, threshold {x}, context-aware "
                        f"decoding {alpha}), hybrid (the fine-tuned adapter with {k} passages, threshold {x}), rag (the "
                        f"untuned model told the answer format, {k} passages, threshold {x}), fine-tuned (the "
                        "fine-tuned adapter, no retrieval), base (the untuned model alone). A tuned arm's adapter is "
                        "trained the first time (tens of minutes on 2 CPU cores in the workshop profile) and taken "
                        "from the cache after (default: none, the flags alone)")
    p.add_argument("--profile", choices=tuple(profiles.PROFILES), default=ASK_PROFILE,
                   help="with --system: the size of the run whose adapters the arm uses (training steps, RAFT training "
                        "draws); the report's run is workshop (default: %(default)s)")
    p.add_argument("--no-retrieval", action="store_true", help="answer from the model alone (default: off)")
    p.add_argument("--adapter", metavar="PATH", help="a LoRA adapter saved by ragft, e.g. printed by `ragft train`; "
                   "with --system raft or hybrid it replaces the arm's adapter (default: none, the untuned model)")
    p.add_argument("-k", "--top-k", dest="top_k", type=number(int, "-k", low=1), default=None,
                   help=f"passages to retrieve (default: {DEFAULT_TOP_K})")
    p.add_argument("--threshold", type=threshold_arg, default=None, metavar="X",
                   help="drop passages scoring below X (cosine); with none left the answer is the house abstention "
                        f"without generating; 'off' keeps the top k (default: {RetrievalSettings.threshold}, the arms' "
                        "fixed value; the report calibrates it on dev questions instead)")
    p.add_argument("--passage-order", default=PASSAGE_ORDER, choices=PASSAGE_ORDERS,
                   help="where the best passage sits in the prompt (default: %(default)s, next to the question)")
    p.add_argument("--name-check", action=argparse.BooleanOptionalAction, default=None,
                   help="abstain without generating when the question names an API in backticks (`np.X`) and no "
                        "retrieved passage documents it (default: on for --system's retrieving arms, as evaluated; "
                        "off without --system)")
    p.add_argument("--mode", default="hybrid", choices=MODES, help="retriever over the index: dense + BM25 fused, "
                   "as `ragft search` (default: %(default)s)")
    p.add_argument("--embedder", default=None, help="query encoder; another one than the index's is refused "
                   "(default: the one the index was built with)")
    p.add_argument("--contrast", type=number(float, "--contrast", low=0, why=", 0 = off"), default=None,
                   metavar="ALPHA",
                   help="context-aware decoding: contrast each step of the answer's first line with the question "
                        f"asked without its passages, 0 = off (default: {AnswerSettings.raft_contrast} with --adapter "
                        "or --system raft, else 0)")
    p.add_argument("--model", default=DEFAULT_LLM, help="LLM by registry name (default: %(default)s)")
    p.add_argument("--max-new-tokens", type=number(int, "--max-new-tokens", low=1), default=None,
                   help="cap on the answer's length; generation stops at the answer's end "
                        f"(default: {ANSWER_MAX_NEW_TOKENS}; with --system, the profile's)")
    p.add_argument("--max-prompt-tokens", type=number(int, "--max-prompt-tokens", low=1), default=1024,
                   help="prompt budget; lowest-ranked passages are cut (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text (default: off)")
    add_backend_args(p)
    p.set_defaults(func=cmd_ask)


def arm_adapter(preset: AskPreset, settings: ArmSettings) -> Path:
    """The tuned arm's adapter as the report makes it: trained once, then loaded from the adapter cache."""
    if preset.adapter_role == "raft":
        from ..systems.draws import tuned_adapters  # trains or loads both adapters (and judges RAFT draws)

        return tuned_adapters(settings).raft
    from ..data.datasets import load_train_pairs
    from ..training import finetune
    from ..training.draws import TRAINING_SETS

    pairs, _ = load_train_pairs(TRAINING_SETS[settings.training.pairs][0]())
    return finetune.train_or_load_adapter(pairs, settings.lora(), settings.sft_train(), model_name=settings.answer.llm)


def cmd_ask(args) -> int:
    """Answer `args.question`; print the answer, its sources (doc ids, scores) and the retrieve/prompt/generate time."""
    if not args.question.strip():
        raise CliError("empty question: give some text to ask")
    check_text(args.question, "the question")
    check_text(args.index, "INDEX", PATH_FIX)
    if args.adapter:  # a damaged adapter file is named now, not as a SafetensorError after the model has loaded
        check_adapter_files(args.adapter)
    preset = ask_preset(args)
    adapter = args.adapter
    if adapter is None and preset.adapter_role:
        adapter = str(arm_adapter(preset, arm_settings(args.profile, args.model)))
        print(f"ragft: the {preset.system} arm's adapter: {adapter}", file=sys.stderr)
    retriever = None
    target = pgvector_target(args, args.index) if preset.retrieval else None
    loads = {"index": 0.0, "model": 0.0}
    t0 = time.perf_counter()
    if preset.retrieval:
        encoder = get_encoder(args.embedder) if args.embedder else None
        if target is not None:
            from ..retrieval.pgvector.store import open_retriever  # psycopg and the embedded server only when asked for

            retriever = open_retriever(target[0], args.mode, target[1], encoder=encoder)
        else:
            retriever = retriever_from_index(DenseIndex.load(args.index, encoder=encoder), args.mode)
    loads["index"] = time.perf_counter() - t0
    try:
        t0 = time.perf_counter()
        model, tok = load_model(args.model, adapter)
        loads["model"] = time.perf_counter() - t0
        # a tuned model LEARNED the format: no system prompt (as `systems.make_arms`); the untuned model is TOLD it
        prompts = {"system": None, "base_system": None} if preset.tuned else {}
        pipe = RagPipeline(retriever, model, tok, RagConfig(
            top_k=preset.top_k, threshold=preset.threshold, passage_order=args.passage_order, contrast=preset.contrast,
            name_check=preset.name_check, max_new_tokens=preset.max_new_tokens, passage_chars=preset.passage_chars,
            max_prompt_tokens=args.max_prompt_tokens, **prompts))
        answer = pipe.answer(args.question, retrieval=preset.retrieval)
    finally:
        if target is not None and retriever is not None:
            retriever.close()
    print_answer(args, preset, adapter, answer, {**loads, "command": since_start()})
    return 0


def since_start() -> float:
    """Seconds since this process started: what a user waits from pressing Enter, imports included."""
    import psutil

    return time.time() - psutil.Process().create_time()


def print_answer(args, preset: AskPreset, adapter: str | None, answer, waits: dict | None = None) -> None:
    """The answer, its sources and timings as text, or as one JSON object with --json."""
    for w in answer.warnings:
        print(f"ragft: {w}", file=sys.stderr)
    if args.json:
        print(json.dumps({**answer.to_json(), "model": args.model, "adapter": adapter, "contrast": preset.contrast,
                          "system": preset.system, "threshold": preset.threshold, "top_k": preset.top_k,
                          "waits_s": waits or {}},
                         ensure_ascii=False))
        return
    print(answer.text)
    print()
    if answer.passages:
        print("Sources:")
        for h in answer.passages:
            print(f"  [{h.rank + 1}] {h.score:.4f}  {h.doc_id}")
    elif preset.retrieval:
        print("Sources: none (no passage above the threshold)" if answer.abstained_no_context else "Sources: none")
    for h in answer.cut:
        print(f"  cut (prompt budget): {h.doc_id}")
    t = answer.timings
    speed = f", {answer.tokens_per_s:.1f} tok/s" if answer.tokens_per_s and answer.tokens_per_s == answer.tokens_per_s else ""
    print(f"Time: retrieve {t.retrieve_s * 1000:.0f} ms, prompt {t.prompt_s * 1000:.0f} ms, generate {t.generate_s:.2f} s"
          f" ({answer.n_prompt_tokens} prompt tokens, {answer.n_new_tokens} new{speed})")
    if waits:
        first = f", first token {answer.ttft_s:.2f} s into generating" if answer.ttft_s is not None else ""
        print(f"Wait: {waits['command']:.1f} s from the command to the whole answer (loading the index "
              f"{waits['index']:.1f} s, the model {waits['model']:.1f} s{first})")


def load_model(name: str, adapter: str | None):
    """The LLM (and its LoRA adapter, if any) with the loading bar off; unknown or missing models become CliError."""
    # transformers takes about a second to import: imported here so that `ragft --help`, index and search start fast.
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a "Loading weights" bar on stderr would bury the answer and its errors
    try:
        model, tok = load_llm(name)
    except (ModelUnavailable, KeyError) as e:
        raise CliError(str(e.args[0] if e.args else e)) from None
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    if adapter:
        model = load_adapter(model, adapter)  # AdapterMismatch (a ValueError) if made for another base model
        model.eval()
    return model, tok
