"""Thin ipywidgets wiring for the notebooks: each widget calls a pure function from another module and shows its result.

The functions hold the logic (and are tested directly); callbacks here only read controls and render. Papermill does not
save widget state, so every notebook follows a widget cell with one static call of the same function.
"""

from __future__ import annotations

import html
import math
import time

import ipywidgets as w

from .. import systems
from ..core.profiles import DEFAULT_TOP_K
from ..retrieval.chunking import chunk_table
from ..retrieval.retrievers import search_table
from ..systems.pipeline import compare_adapter, compare_answers


# --- the one answer card ---------------------------------------------------------------------------------------------
def answer_card(arm: str, setup: str, answer: str, details: str = "") -> str:
    """One arm's answer as an HTML card: the arm, how it is set up, the answer verbatim (escaped), then `details`
    (already HTML). Every answer panel in the notebooks and the dashboard is a row of these cards."""
    return (f"<div class='ragft-card' data-arm='{html.escape(arm)}' style='flex:1 1 16em;min-width:16em;"
            f"border:1px solid #ccc;border-radius:6px;padding:6px 10px'>"
            f"<h4 style='margin:2px 0'>{html.escape(arm)}</h4><div style='font-size:85%;color:#555'>"
            f"{html.escape(setup)}</div>"
            f"<pre class='ragft-answer' style='white-space:pre-wrap;font-size:85%'>{html.escape(answer)}</pre>"
            f"<div style='font-size:85%'>{details}</div></div>")


def card_row(cards: list[str], head: str = "") -> str:
    """Cards side by side (wrapping on narrow screens), under an optional heading (HTML)."""
    return f"<div class='ragft-answers'>{head}<div style='display:flex;gap:8px;flex-wrap:wrap'>{''.join(cards)}</div></div>"


def _verdict(r) -> str:
    verdict = "house format" if r["compliant"] else "not in the house format"
    if r.get("problems"):
        verdict = f"not compliant: {r['problems']}" if not r["compliant"] else verdict
    return verdict + (" · abstained" if r["abstained"] else "")


def _fmt(v, pct: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return f"{v:.0%}" if pct else (f"{v:.2f}" if isinstance(v, float) else str(v))


def answers_html(df, systems=None) -> str:
    """The dashboard's answer panel: one card per arm, side by side (answer, sources with scores, metrics, timings).

    Pure: takes `systems.ask`/`systems.compare` rows, returns HTML, so the report and the tests see what the browser shows.
    """
    described = {s.name: s.describe() for s in systems or []}
    cards = []
    for r in df.to_dict("records"):
        d = described.get(r["arm"], {})
        setup = " · ".join(f"{k} {d[k]}" for k in ("adapter", "retrieval", "top_k", "threshold") if d.get(k) not in (None, "none"))
        setup += " · name check" if d.get("name_check") else ""
        srcs = "".join(f"<li><code>{html.escape(i)}</code> {s:.3f}</li>" for i, s in zip(r["doc_ids"], r["scores"], strict=True))
        if r.get("gated"):
            why = ("no passage documents the API the question names" if r.get("gate") == "name"
                   else "no passage above the threshold")
            srcs = f"<li>{why}: abstained without generating</li>"
        metrics = (f"correct {_fmt(r['correct'])} · stale {_fmt(r['stale'])} · " if r["kind"] != "typed" else "") + \
            f"house format {_fmt(r['compliant'])} · abstained {_fmt(r['abstained'])}" + \
            (f" · grounded {_fmt(r['grounded'], pct=True)}" if r.get("grounded") is not None else "")
        timing = (f"retrieval {r['retrieval_s'] * 1000:.0f} ms · generation {r['generation_s']:.1f} s"
                  f" · {r['new_tokens']} tokens" + (" · cached" if r["cached"] else ""))
        if r.get("prompt_tokens"):  # what the prompt costs: its length and the time to the first answer token
            timing += f" · prompt {r['prompt_tokens']} tokens, first token after {r.get('ttft_s', 0.0):.1f} s"
        cards.append(answer_card(r["arm"], setup or "no retrieval, no adapter", r["answer"],
                                 f"<b>sources</b><ul style='margin:0'>{srcs or '<li>none (no retrieval)</li>'}</ul>"
                                 f"<b>metrics</b> {html.escape(metrics)}<br><b>timings</b> {html.escape(timing)}"))
    q = df["question"].iloc[0] if len(df) else ""
    qid = df["id"].iloc[0] if len(df) else ""
    head = f"<div class='ragft-question'><b>{html.escape(qid or 'typed question')}</b>: {html.escape(q)}</div>"
    return card_row(cards, head)


# --- fine-tuning widgets ----------------------------------------------------------------------------------------------
def comparison_html(df) -> str:
    """Base and tuned answers side by side (from `pipeline.compare_adapter`), as answer cards."""
    return card_row([answer_card(str(r["arm"]), f"{_verdict(r)}; {r['seconds']} s", str(r["answer"]))
                     for r in df.to_dict("records")])


def adapter_comparison_widget(model, tok, questions: list[str] | None = None, max_new_tokens: int = 80):
    """Type or pick a question; "Compare" answers it with the adapter off (base) and on (tuned), no system prompt.

    Children: [question box, Compare button, result HTML]. The model is not reloaded: peft switches the adapter.
    """
    questions = questions or []
    box = w.Combobox(value=questions[0] if questions else "", options=list(questions), ensure_option=False,
                     placeholder="Ask a NumPy question", description="Question", layout=w.Layout(width="80%"))
    run = w.Button(description="Compare", button_style="primary", tooltip="answer with the adapter off, then on")
    result = w.HTML()

    def on_click(_):
        q = box.value.strip()
        if not q:
            result.value = "<i>type a question first</i>"
            return
        result.value = "<i>generating (base, then tuned)…</i>"
        result.value = comparison_html(compare_adapter(model, tok, q, max_new_tokens=max_new_tokens))

    run.on_click(on_click)
    return w.VBox([box, run, result])


# --- dashboard widgets ------------------------------------------------------------------------------------------------
class ComparisonDashboard:
    """The arms side by side on one question: pick a QA item or type one, choose arms, retrieval mode, top_k, threshold,
    the name check, adapters on/off; every change re-asks (answers are cached, so going back is instant).

    All logic is `systems.ask` + `answers_html`; this class only reads the controls. `.widget` is what to display;
    `.last` holds the latest rows (a DataFrame) and `.panel` the answer panel, for tests and the static call after it.
    Introduced in notebooks/06_compare.ipynb.
    """

    def __init__(self, systems, questions, retrievers: dict | None = None, *, top_k: int = DEFAULT_TOP_K,
                 threshold: float | None = None, pool=None, cache=True, auto: bool = True):
        if not systems:
            raise ValueError("the dashboard needs at least one system")
        self.systems, self.retrievers = list(systems), dict(retrievers or {})
        self.pool, self.cache, self.last = pool or systems.ModelPool(), cache, None
        wide = w.Layout(width="auto")
        self.question = w.Dropdown(options=[(f"{q.id} · {q.question[:70]}", q) for q in questions], description="Question",
                                   layout=w.Layout(width="70%"))
        self.typed = w.Text(value="", placeholder="…or type your own question and press Enter", continuous_update=False,
                            layout=w.Layout(width="70%"), description="Typed")
        self.arms = {s.name: w.Checkbox(value=True, description=s.name, indent=False, layout=wide) for s in self.systems}
        self.mode = w.Dropdown(options=list(self.retrievers) or ["as built"], description="Retrieval", layout=wide)
        self.top_k = w.IntSlider(value=top_k, min=1, max=10, description="top_k", continuous_update=False)
        self.use_threshold = w.Checkbox(value=threshold is not None, description="threshold", indent=False, layout=wide)
        self.threshold = w.FloatSlider(value=threshold if threshold is not None else 0.5, min=0.0, max=1.0, step=0.05,
                                       continuous_update=False, readout_format=".2f", layout=w.Layout(width="14em"))
        checked = any(getattr(s, "name_check", False) for s in self.systems)  # starts as the arms were built
        self.name_check = w.Checkbox(value=checked, description="name check", indent=False, layout=wide,
                                     tooltip="abstain without generating when no passage documents the `np.X` asked about")
        self.adapter = w.Checkbox(value=True, description="adapters on", indent=False, layout=wide)
        self.button = w.Button(description="Ask", button_style="primary", tooltip="answer with the chosen arms")
        self.status = w.HTML()
        self.panel = w.HTML()
        self.panel.add_class("ragft-answer-panel")
        self.widget = w.VBox([
            self.question, self.typed,
            w.HBox([w.HTML("<b>Arms</b>&nbsp;"), *self.arms.values()]),
            w.HBox([self.mode, self.top_k, self.use_threshold, self.threshold, self.name_check, self.adapter,
                    self.button]),
            self.status, self.panel])
        self.button.on_click(lambda _: self.update())
        if auto:
            for c in (self.question, self.typed, self.mode, self.top_k, self.use_threshold, self.threshold,
                      self.name_check, self.adapter, *self.arms.values()):
                c.observe(self._changed, names="value")

    def _changed(self, change):
        if change["owner"] is self.question and self.typed.value:
            self.typed.value = ""  # picking a QA item replaces the typed question (this fires one update by itself)
            return
        if change["owner"] is self.threshold and not self.use_threshold.value:
            return
        self.update()

    def current_question(self):
        """The typed text if any, else the chosen QA item."""
        return self.typed.value.strip() or self.question.value

    def update(self):
        """Ask the current question with the current knobs and render the panel; returns the rows (or None on error)."""
        arms = [name for name, box in self.arms.items() if box.value]
        retriever = self.retrievers.get(self.mode.value)
        question = self.current_question()
        if question is None or not arms:
            self.panel.value = "<i>choose a question and at least one arm</i>"
            return None
        self.status.value = "<i>answering…</i>"
        t0 = time.perf_counter()
        try:
            df = systems.ask(question, self.systems, arms, top_k=self.top_k.value,
                            threshold=self.threshold.value if self.use_threshold.value else None, retriever=retriever,
                            retriever_label=self.mode.value if retriever is not None else None,
                            adapter=self.adapter.value, name_check=self.name_check.value, pool=self.pool, cache=self.cache)
        except ValueError as e:  # empty question, bad knob: say so in the panel instead of a traceback
            self.status.value = ""
            self.panel.value = f"<b style='color:#b00'>{html.escape(str(e))}</b>"
            return None
        shown = systems.configure([s for s in self.systems if s.name in arms], top_k=self.top_k.value,
                                 threshold=self.threshold.value if self.use_threshold.value else None, retriever=retriever,
                                 retriever_label=self.mode.value if retriever is not None else None,
                                 adapter=self.adapter.value, name_check=self.name_check.value)
        self.last = df
        self.panel.value = answers_html(df, shown)
        self.status.value = (f"{len(df)} arm(s) in {time.perf_counter() - t0:.1f} s; "
                             f"{int(df['cached'].sum())} answer(s) from the cache")
        return df


def comparison_dashboard(systems, questions, retrievers: dict | None = None, **kwargs):
    """Build the dashboard, answer its first question once, and return it (display `.widget`)."""
    dash = ComparisonDashboard(systems, questions, retrievers, **kwargs)
    dash.update()
    return dash


# --- retrieval widgets ------------------------------------------------------------------------------------------------
def chunk_browser(docs, strategies=("fixed", "sentence", "structure", "semantic"), chunk_size: int = 200,
                  chunk_overlap: int = 32, encoder=None):
    """Pick a document, a strategy, chunk_size and chunk_overlap; see how `chunking.chunk_table` cuts it.

    Children: [doc, strategy, chunk_size, chunk_overlap, result HTML]. Introduced in notebooks/01_chunking.ipynb.
    """
    by_id = {d.doc_id: d for d in docs}
    doc = w.Dropdown(options=sorted(by_id), description="doc_id", layout=w.Layout(width="50%"))
    strategy = w.ToggleButtons(options=list(strategies), value="structure" if "structure" in strategies else strategies[0])
    size = w.IntSlider(value=chunk_size, min=16, max=512, step=16, description="chunk_size", continuous_update=False)
    overlap = w.IntSlider(value=chunk_overlap, min=0, max=128, step=8, description="chunk_overlap", continuous_update=False)
    result = w.HTML()

    def update(_=None):
        if overlap.value >= size.value:
            result.value = f"<b style='color:#b00'>chunk_overlap ({overlap.value}) must be below chunk_size ({size.value})</b>"
            return
        df = chunk_table(by_id[doc.value], strategy.value, size.value, overlap.value, encoder=encoder)
        result.value = (f"<p>{len(df)} chunks, {df['tokens'].mean():.0f} tokens on average "
                        f"({int((df['tokens'] > 256).sum())} over MiniLM's 256-token limit)</p>"
                        + df.to_html(index=False, escape=True))

    for c in (doc, strategy, size, overlap):
        c.observe(update, names="value")
    update()
    return w.VBox([doc, strategy, w.HBox([size, overlap]), result])


def search_explorer(retrievers: dict, top_k: int = 5, ef: int = 64, query: str = ""):
    """Type a query; choose the retriever (e.g. dense / bm25 / hybrid), top_k, ef (HNSW beam) and an optional threshold.

    Shows `retrievers.search_table`. Children: [query, mode, top_k, ef, use threshold, threshold, result HTML].
    Introduced in notebooks/02_hnsw_retrieval.ipynb.
    """
    box = w.Text(value=query, placeholder="ask the documentation…", description="query", continuous_update=False,
                 layout=w.Layout(width="70%"))
    mode = w.Dropdown(options=list(retrievers), description="retriever")
    k = w.IntSlider(value=top_k, min=1, max=20, description="top_k", continuous_update=False)
    beam = w.IntSlider(value=ef, min=1, max=512, description="ef", continuous_update=False)
    use_t = w.Checkbox(value=False, description="threshold", indent=False)
    t = w.FloatSlider(value=0.4, min=-1.0, max=1.0, step=0.05, continuous_update=False, readout_format=".2f")
    result = w.HTML()

    def update(_=None):
        if not box.value.strip():
            result.value = "<i>type a query</i>"
            return
        df = search_table(retrievers[mode.value], box.value, k.value, t.value if use_t.value else None, beam.value)
        result.value = df.to_html(index=False, escape=True) if len(df) else "<i>no hits above the threshold</i>"

    for c in (box, mode, k, beam, use_t, t):
        c.observe(update, names="value")
    update()
    return w.VBox([box, w.HBox([mode, k, beam]), w.HBox([use_t, t]), result])


# --- rag widgets ------------------------------------------------------------------------------------------------------
def rag_comparison_html(result: dict) -> str:
    """`pipeline.compare_answers`' result as HTML: the retrieved passages with scores, then base and RAG as cards."""
    hits = result["passages"]
    top = hits.to_html(index=False, escape=True) if len(hits) else "<p><i>no passage above the threshold: RAG abstains</i></p>"
    cards = [answer_card(str(r["arm"]), f"{_verdict(r)}; {r['seconds']} s", str(r["answer"]))
             for r in result["answers"].to_dict("records")]
    return f"<b>retrieved</b>{top}" + card_row(cards)


def rag_widget(pipeline, retrievers: dict, questions: list[str] | None = None, top_k: int = DEFAULT_TOP_K):
    """Type or pick a question, set top_k / threshold / retriever; "Ask" shows the retrieved passages with their scores
    and the base and RAG answers side by side (`pipeline.compare_answers`).

    Children: [question, HBox[retriever, top_k], HBox[use threshold, threshold], Ask button, result HTML].
    Introduced in notebooks/03_rag.ipynb.
    """
    questions = list(questions or [])
    box = w.Combobox(value=questions[0] if questions else "", options=questions, ensure_option=False,
                     placeholder="Ask a NumPy question", description="question", layout=w.Layout(width="80%"))
    mode = w.Dropdown(options=list(retrievers), description="retriever")
    k = w.IntSlider(value=top_k, min=1, max=10, description="top_k", continuous_update=False)
    use_t = w.Checkbox(value=False, description="threshold", indent=False)
    t = w.FloatSlider(value=0.4, min=-1.0, max=1.0, step=0.05, continuous_update=False, readout_format=".2f")
    ask = w.Button(description="Ask", button_style="primary", tooltip="retrieve, then answer without and with the passages")
    result = w.HTML()

    def on_click(_=None):
        q = box.value.strip()
        if not q:
            result.value = "<i>type a question first</i>"
            return
        result.value = "<i>retrieving and generating (base, then RAG)…</i>"
        out = compare_answers(pipeline, q, top_k=k.value, threshold=t.value if use_t.value else None,
                              retriever=retrievers[mode.value])
        result.value = rag_comparison_html(out)

    ask.on_click(on_click)
    return w.VBox([box, w.HBox([mode, k]), w.HBox([use_t, t]), ask, result])
