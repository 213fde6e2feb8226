"""The notebooks' figures and the HTML report: the setup banner, recorded figures and executing notebooks
(`notebooks`), the index page (`page`) with its tables, takeaways and labels (`tables`, `summaries`, `labels`).
"""

from . import labels, notebooks, page, summaries, tables
from .labels import LABELS, Label, describe, fmt, fmt_interval, guess_unit, readable, unit_suffix
from .notebooks import (
    NOTEBOOK_DIR,
    execute_notebook,
    list_notebooks,
    read_figures,
    record_figures,
    save_figure,
    setup_notebook,
    write_index,
)
from .page import (
    CSS,
    HIDDEN,
    IMAGE_TYPES,
    VERDICTS_FROM,
    NotebookResult,
    collect,
    executed_error,
    notebook_title,
    render,
)
from .summaries import HEADLINES, TAKEAWAYS, Headline, context_line, headlines, takeaway
from .tables import (
    LABEL_ORDER,
    MAX_COLUMNS,
    MAX_ROWS,
    ROW_NAME_KEYS,
    VERDICT_WORDS,
    arms_table,
    claims_list,
    details_tables,
    is_records,
    p_values_text,
    records_table,
    small_table,
)

__all__ = ["CSS", "HEADLINES", "HIDDEN", "Headline", "IMAGE_TYPES", "LABELS", "LABEL_ORDER", "Label", "MAX_COLUMNS", "MAX_ROWS", "NOTEBOOK_DIR", "NotebookResult", "ROW_NAME_KEYS", "TAKEAWAYS", "VERDICTS_FROM", "VERDICT_WORDS", "arms_table", "claims_list", "collect", "context_line", "describe", "details_tables", "execute_notebook", "executed_error", "fmt", "fmt_interval", "guess_unit", "headlines", "is_records", "labels", "list_notebooks", "notebook_title", "notebooks", "p_values_text", "page", "read_figures", "readable", "record_figures", "records_table", "render", "save_figure", "setup_notebook", "small_table", "summaries", "tables", "takeaway", "unit_suffix", "write_index"]
