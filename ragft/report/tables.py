"""Recorded figures as small HTML tables for the report's index: labelled headers, rounded cells, intervals beside values.

An arms table puts arms in columns and metrics in rows, so it fits the page however many metrics there are; a list of
records becomes a table (turned on its side when wide and short), a dict of numbers a one-row table, and what varies
nowhere is said once above the table. Not a general HTML table library: it knows the shapes the notebooks record.
"""

from __future__ import annotations

import html

from .labels import LABELS, SHARE, describe, fmt, fmt_interval, unit_suffix

ROW_NAME_KEYS = ("arm", "system", "strategy", "retriever", "name", "id", "kind", "mode", "chunk_size", "lora_r")
VERDICT_WORDS = {True: ("ok", "✓ supported"), False: ("bad", "✗ not supported"), None: ("na", "– not tested"),
                 "supported": ("ok", "✓ supported"), "contradicted": ("bad", "✗ contradicted"),
                 "not separable at this n": ("na", "≈ not separable at this n"), "not tested": ("na", "– not tested")}
LABEL_ORDER = {k: i for i, k in enumerate(LABELS)}
MAX_ROWS = 12  # longer tables are cut here: the figures JSON holds the rest
MAX_COLUMNS = 7  # a table with more columns than this and fewer rows is turned on its side to fit the page


def arms_table(arms: list[dict]) -> str:
    """Arms as columns, metrics as rows (it fits the page however many metrics there are); intervals beside values."""
    name_key = _name_key(arms)
    names = [str(a.get(name_key, i)) for i, a in enumerate(arms, 1)]
    keys = sorted(_columns(arms, name_key), key=lambda k: _row_order(arms, k))
    shares = any(describe(k).unit == SHARE for k in keys)  # said once in the corner instead of on every row
    corner = "<span class='note'>shares 0–1 unless marked</span>" if shares else ""
    head = f"<tr><th>{corner}</th>" + "".join(f"<th>{html.escape(n)}</th>" for n in names) + "</tr>"
    rows = []
    for k in keys:
        label = describe(k)
        text = all(isinstance(a.get(k), str) or a.get(k) is None for a in arms)
        cells = "".join(_td(_cell(a, k, label.unit), text) for a in arms)
        rows.append(f"<tr><td>{_header(k, shares_said=shares)}</td>{cells}</tr>")
    return f"<table class='arms'>{head}{''.join(rows)}</table>"


def claims_list(claims) -> str:
    """Each claim with its verdict: {claim: True | False | None | str} or [{claim, holds | verdict, numbers}, ...];
    its raw and Holm-adjusted p-values when recorded (the verdict is then the adjusted one's)."""
    if isinstance(claims, dict):
        claims = [{"claim": k, "holds": v} for k, v in claims.items()]
    if not is_records(claims):
        return ""
    items = []
    for c in claims:
        verdict = c.get("verdict", c.get("holds"))
        cls, word = VERDICT_WORDS.get(verdict, ("na", str(verdict)))
        numbers = f" ({html.escape(str(c['numbers']))})" if c.get("numbers") else ""
        p = p_values_text(c)
        p = f" <span class='note'>{html.escape(p)}</span>" if p else ""
        items.append(f"<li><span class='{cls}'>{html.escape(word)}</span>: {html.escape(str(c.get('claim', '')))}"
                     f"{numbers}{p}</li>")
    families = {c.get("family") for c in claims if isinstance(c.get("family"), int) and c.get("family")}
    note = (f"<p class='note'>Verdicts after Holm-Bonferroni over the {max(families)} claims tested: a claim counts only "
            "when its adjusted p is below alpha and its interval excludes the boundary.</p>") if families else ""
    return f"<ul class='claims'>{''.join(items)}</ul>{note}"


def p_values_text(c: dict) -> str:
    """'p 0.004 · Holm 0.09 · supported alone' from a claim's recorded p-values; older figures: the exact paired test's p, if any."""
    def num(v) -> str | None:
        return f"{v:.2g}" if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v else None

    raw, adjusted = num(c.get("p_raw", c.get("p_mcnemar"))), num(c.get("p_adjusted"))
    bits = [f"p {raw}" if raw else None, f"Holm {adjusted}" if adjusted else None]
    alone = c.get("unadjusted_verdict")
    if adjusted and alone and alone != c.get("verdict"):
        bits.append(f"{alone} alone")
    if raw and not adjusted:
        bits.append("uncorrected")
    return " · ".join(b for b in bits if b)


def details_tables(f: dict, used: set[str]) -> str:
    """The nested data as small tables, then the remaining single numbers as one table, folded away."""
    tables, names, singles = [], [], []
    groups = _same_key_dicts(f, used)
    for keys in groups.values():
        if len(keys) > 1:  # {"base": .., "tuned": ..} recorded once per metric: one table, a row per metric
            title = " vs ".join(str(c) for c in f[keys[0]])
            names.append(title)
            table = arms_table([{"name": c, **{k: f[k][c] for k in keys}} for c in f[keys[0]]])
            tables.append(f"<h3>{html.escape(title)}</h3><div class='tw'>{table}</div>")
            used = used | set(keys)
    for k, v in f.items():
        if k in used:
            continue
        if isinstance(v, (dict, list)) and v:
            t = small_table(v, describe(k).unit)
            if t:
                names.append(describe(k).text)
                tables.append(f"<h3>{html.escape(describe(k).text)}</h3><div class='tw'>{t}</div>")
                continue
        if not isinstance(v, (dict, list)):
            singles.append((k, v))
    out = []
    if tables:
        out.append(f"<details><summary>Tables: {html.escape(', '.join(names))}</summary>{''.join(tables)}</details>")
    if singles:
        rows = "".join(f"<tr><td>{html.escape(describe(k).text)}</td>{_td(fmt(v, describe(k).unit), isinstance(v, str))}</tr>"
                       for k, v in singles)
        out.append(f"<details><summary>Other numbers ({len(singles)})</summary><table>{rows}</table></details>")
    return "".join(out)


def _same_key_dicts(f: dict, used: set[str]) -> dict[tuple, list[str]]:
    """Top-level dicts of numbers grouped by their key sets: {("base", "tuned"): ["abstained", "abstention_recall"]}."""
    groups: dict[tuple, list[str]] = {}
    for k, v in f.items():
        if k not in used and isinstance(v, dict) and v and all(
                isinstance(x, (int, float)) or x is None for x in v.values()):
            groups.setdefault(tuple(v), []).append(k)
    return groups


def small_table(v, unit: str = "") -> str:
    """A list of records, a dict of numbers or a dict of records as an HTML table ('' for anything else)."""
    if isinstance(v, dict) and v and all(isinstance(x, dict) for x in v.values()):
        v = [{"name": k, **x} for k, x in v.items()]
    if is_records(v):
        return records_table(v)
    if isinstance(v, dict) and v:
        keys = sorted(v, key=lambda k: (k not in LABEL_ORDER, LABEL_ORDER.get(k, 0)))  # stable: unknown keys keep order
        if len(keys) <= MAX_COLUMNS:  # a few numbers read best side by side
            head = "".join(f"<th>{_key_header(k, unit)}</th>" for k in keys)
            cells = "".join(f"<td>{html.escape(_value(v[k], _unit_of(k, unit)))}</td>" for k in keys)
            return f"<table><tr>{head}</tr><tr>{cells}</tr></table>"
        rows = "".join(f"<tr><td>{_key_header(k, unit)}</td><td>{html.escape(_value(v[k], _unit_of(k, unit)))}"
                       "</td></tr>" for k in keys[:MAX_ROWS])
        return f"<table>{rows}</table>" + _cut_note(len(keys))
    if isinstance(v, list) and v and not any(isinstance(x, (dict, list)) for x in v):
        return f"<p>{html.escape(_value(v, unit))}</p>"
    return ""


def records_table(records: list[dict]) -> str:
    """A list of dicts as a table: the column naming each row first, intervals merged, wide-and-short tables turned."""
    name_key = _name_key(records)
    cols = sorted(_columns(records, name_key), key=lambda k: _row_order(records, k))
    if len(cols) + bool(name_key) > MAX_COLUMNS and len(records) <= MAX_COLUMNS:
        return arms_table(records)
    # a column with one value in every row is said once above the table; one that is empty everywhere is left out
    same = [c for c in cols if len(records) > 1 and _same_everywhere(records, c)]
    cols = [c for c in cols if c not in same]
    if name_key:
        cols = [name_key, *cols]
    said = [f"{describe(c).text} {fmt(records[0].get(c), describe(c).unit)}" for c in same if records[0].get(c) is not None]
    note = f"<p class='note'>Every row: {html.escape(' · '.join(said))}</p>" if said else ""
    shown = records[:MAX_ROWS]
    head = "".join(f"<th>{_header(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(_td(_cell(r, c, describe(c).unit), isinstance(r.get(c), str)) for c in cols) + "</tr>"
                   for r in shown)
    return f"{note}<table><tr>{head}</tr>{body}</table>" + _cut_note(len(records))


def _header(key: str, parent_unit: str = "", shares_said: bool = False) -> str:
    """'Accuracy <span>(0–1)</span>': the label may wrap, its unit stays in one piece."""
    label = describe(str(key))
    unit = "" if shares_said and label.unit == SHARE else unit_suffix(label.unit or parent_unit)
    return html.escape(label.text) + (f" <span class='u'>{html.escape(unit.strip())}</span>" if unit else "")


def _td(text: str, is_text: bool = False) -> str:
    """A cell: numbers align right, text left; an interval '0.62 [0.48–0.75]' wraps only before its bracket."""
    body = html.escape(text)
    value, bracket, rest = body.partition(" [")
    if bracket and rest.endswith("]"):
        body = f"{value} <span class='ci'>[{rest}</span>"
    if is_text:  # a long unbroken token (an id, a path) may break anywhere rather than widen the page
        return f"<td class='t w'>{body}</td>" if max(map(len, text.split()), default=0) > 24 else f"<td class='t'>{body}</td>"
    return f"<td>{body}</td>"


def _cut_note(n: int) -> str:
    return f"<p class='note'>First {MAX_ROWS} of {n} rows; the figures JSON holds all.</p>" if n > MAX_ROWS else ""


def _columns(records: list[dict], name_key: str | None) -> list[str]:
    """Every key in first-seen order, without the row names and without intervals (they print beside their value)."""
    seen: dict[str, None] = {}
    for r in records:
        seen.update(dict.fromkeys(r))
    return [k for k in seen if k != name_key and not _is_interval_key(k, seen)]


def _row_order(records: list[dict], key: str) -> tuple:
    """Descriptions first (retrieval, model...), then the labelled metrics in the labels' order, then unknown keys;
    rows empty for every arm last.

    Figures JSON is stored with sorted keys, so the recorded order is alphabetical and says nothing.
    """
    values = [r.get(key) for r in records if r.get(key) is not None]
    text = bool(values) and all(isinstance(v, str) for v in values)
    return (not text, not values, key not in LABEL_ORDER, LABEL_ORDER.get(key, 0), key)


def _same_everywhere(records: list[dict], col: str) -> bool:
    first = records[0].get(col)
    return not isinstance(first, (dict, list)) and all(r.get(col) == first for r in records[1:])


def _is_interval_key(k: str, keys) -> bool:
    for suffix in ("_ci", "_low", "_high"):
        if k.endswith(suffix) and k.removesuffix(suffix) in keys:
            return True
    return False


def _cell(r: dict, k: str, unit: str) -> str:
    v = r.get(k)
    if f"{k}_ci" in r:
        return fmt_interval(v, r[f"{k}_ci"], unit)
    if f"{k}_low" in r and f"{k}_high" in r:
        return fmt_interval(v, [r[f"{k}_low"], r[f"{k}_high"]], unit)
    return _value(v, unit)


def _value(v, unit: str = "") -> str:
    if isinstance(v, list):
        shown = ", ".join(_value(x, unit) for x in v[:8])
        return shown + (f", … ({len(v)} in all)" if len(v) > 8 else "")
    if isinstance(v, dict):
        return "; ".join(f"{k}: {_value(x, _unit_of(k, unit))}" for k, x in list(v.items())[:8])
    return fmt(v, unit, with_unit=False)


def _unit_of(key: str, parent_unit: str) -> str:
    """A listed key's own unit; otherwise the unit of the figure it sits in ("footprint_mb": {"bf16": ...} is MB)."""
    key = str(key)
    return LABELS[key].unit if key in LABELS else parent_unit or describe(key).unit


def _key_header(key, parent_unit: str) -> str:
    """A dict key as a header: listed keys get their label, others are data (an arm, a version) and stay as written."""
    if str(key) in LABELS:
        return _header(key, parent_unit)
    unit = unit_suffix(parent_unit)
    text = html.escape(str(key).replace("_", " "))
    return text + (f" <span class='u'>{html.escape(unit.strip())}</span>" if unit else "")


def _name_key(records: list[dict]) -> str | None:
    keys = set().union(*records)
    return next((k for k in ROW_NAME_KEYS if k in keys), None)


def is_records(v) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)
