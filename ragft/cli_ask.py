"""The `ragft ask` subcommand: answer a question with RAG over an index made by `ragft index` (or without retrieval).

    ragft ask INDEX "question" [--no-retrieval] [--adapter PATH] [-k N] [--threshold X] [--mode dense|bm25|hybrid] [--json]

Prints the answer, its sources (doc ids with scores) and the time split retrieve / prompt / generate. Registered by
`ragft/cli.py` (which turns bad input into `ragft: error: ...` and exit status 2). Does not build or update indexes.
Introduced in notebooks/03_rag.ipynb.
"""

from __future__ import annotations

import json
import sys


def register(subparsers) -> None:
    """Add the `ask` subcommand to the `ragft` parser's subparsers."""
    from .models import DEFAULT_LLM
    from .retrievers import MODES

    p = subparsers.add_parser("ask", help="answer a question with retrieved context (RAG) and show sources and timings",
                              description="Retrieve the top k chunks for QUESTION from INDEX, put them in a numbered, "
                              "delimited prompt and generate an answer greedily.")
    p.add_argument("index", metavar="INDEX", help="index folder made by `ragft index` (not read with --no-retrieval)")
    p.add_argument("question", metavar="QUESTION", help="the question, in quotes")
    p.add_argument("--no-retrieval", action="store_true", help="answer from the model alone (the base arm)")
    p.add_argument("--adapter", metavar="PATH", help="a LoRA adapter saved by ragft (refused if made for another base)")
    p.add_argument("-k", "--top-k", dest="top_k", type=int, default=3, help="passages to retrieve (default: %(default)s)")
    p.add_argument("--threshold", type=float, default=None,
                   help="drop passages scoring below it; with none left the answer is the house abstention")
    p.add_argument("--mode", default="dense", choices=MODES, help="retriever over the index (default: dense HNSW)")
    p.add_argument("--embedder", default=None, help="query encoder (default: the one the index was built with); "
                   "another one is refused")
    p.add_argument("--model", default=DEFAULT_LLM, help="LLM by registry name (default: %(default)s)")
    p.add_argument("--max-new-tokens", type=int, default=80, help="generation length limit (default: %(default)s)")
    p.add_argument("--max-prompt-tokens", type=int, default=1024, help="prompt budget; lowest-ranked passages are cut")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=run)


def _error(msg: str):
    from .cli import CliError  # imported late: cli.py imports this module to register `ask`

    return CliError(msg)


def run(args) -> int:
    """Answer `args.question`; return the exit status. User errors raise cli.CliError (or ValueError) for cli.main."""
    if not args.question.strip():
        raise _error("empty question: give some text to ask")
    if args.top_k < 1:
        raise _error(f"-k must be at least 1, got {args.top_k}")
    if args.max_new_tokens < 1:
        raise _error(f"--max-new-tokens must be at least 1, got {args.max_new_tokens}")
    retriever = None
    if not args.no_retrieval:
        from .index import DenseIndex
        from .retrievers import retriever_from_index

        encoder = None
        if args.embedder:
            from .embeddings import get_encoder

            encoder = get_encoder(args.embedder)
        retriever = retriever_from_index(DenseIndex.load(args.index, encoder=encoder), args.mode)
    model, tok = _load_model(args.model, args.adapter)
    from .generation import RagConfig, RagPipeline

    pipe = RagPipeline(retriever, model, tok, RagConfig(top_k=args.top_k, threshold=args.threshold,
                                                        max_new_tokens=args.max_new_tokens,
                                                        max_prompt_tokens=args.max_prompt_tokens))
    answer = pipe.answer(args.question, retrieval=not args.no_retrieval)
    for w in answer.warnings:
        print(f"ragft: {w}", file=sys.stderr)
    if args.json:
        print(json.dumps({**answer.to_json(), "model": args.model, "adapter": args.adapter}, ensure_ascii=False))
        return 0
    print(answer.text)
    print()
    if answer.passages:
        print("Sources:")
        for h in answer.passages:
            print(f"  [{h.rank + 1}] {h.score:.4f}  {h.doc_id}")
    elif not args.no_retrieval:
        print("Sources: none (no passage above the threshold)" if answer.abstained_no_context else "Sources: none")
    for h in answer.cut:
        print(f"  cut (prompt budget): {h.doc_id}")
    t = answer.timings
    speed = f", {answer.tokens_per_s:.1f} tok/s" if answer.tokens_per_s and answer.tokens_per_s == answer.tokens_per_s else ""
    print(f"Time: retrieve {t.retrieve_s * 1000:.0f} ms, prompt {t.prompt_s * 1000:.0f} ms, generate {t.generate_s:.2f} s"
          f" ({answer.n_prompt_tokens} prompt tokens, {answer.n_new_tokens} new{speed})")
    return 0


def _load_model(name: str, adapter: str | None):
    from transformers.utils import logging as hf_logging

    from .models import ModelUnavailable, load_llm

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a "Loading weights" bar on stderr would bury the answer and its errors
    try:
        model, tok = load_llm(name)
    except (ModelUnavailable, KeyError) as e:
        raise _error(str(e.args[0] if e.args else e)) from None
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    if adapter:
        from .finetune import load_adapter

        model = load_adapter(model, adapter)  # AdapterMismatch (a ValueError) if made for another base model
        model.eval()
    return model, tok
