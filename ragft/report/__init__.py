"""The notebooks' figures and the HTML report: the setup banner, recorded figures and executing notebooks
(`notebooks`), the index page (`page`) with its tables, takeaways and labels (`tables`, `summaries`, `labels`),
and the published results page, docs/results.md (`results`).
"""

from . import labels, notebooks, page, results, summaries, tables, timings
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
from .results import (
    ARM_COLUMNS,
    MISSING,
    NOT_RECORDED,
    PAGE_NOTEBOOKS,
    README_COLUMNS,
    README_END,
    README_START,
    RESULTS_NOTEBOOK,
    RUN_FILE,
    SMOKE_REFUSAL,
    UPDATE_COLUMNS,
    arms_markdown,
    claims_markdown,
    provenance,
    publish_refusal,
    read_published,
    readme_block,
    render_results,
    scope,
    splice_readme,
    timings_markdown,
    update_markdown,
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
from .timings import TIMINGS_FILE, how_long, merge_run, read_timings, write_timings

__all__ = ["ARM_COLUMNS", "CSS", "HEADLINES", "HIDDEN", "Headline", "IMAGE_TYPES", "LABELS", "LABEL_ORDER", "Label", "MAX_COLUMNS", "MAX_ROWS", "MISSING", "NOTEBOOK_DIR", "NOT_RECORDED", "NotebookResult", "PAGE_NOTEBOOKS", "README_COLUMNS", "README_END", "README_START", "RESULTS_NOTEBOOK", "ROW_NAME_KEYS", "RUN_FILE", "SMOKE_REFUSAL", "TAKEAWAYS", "TIMINGS_FILE", "UPDATE_COLUMNS", "VERDICTS_FROM", "VERDICT_WORDS", "arms_markdown", "arms_table", "claims_list", "claims_markdown", "collect", "context_line", "describe", "details_tables", "execute_notebook", "executed_error", "fmt", "fmt_interval", "guess_unit", "headlines", "how_long", "is_records", "labels", "list_notebooks", "merge_run", "notebook_title", "notebooks", "p_values_text", "page", "provenance", "publish_refusal", "read_figures", "read_published", "read_timings", "readable", "readme_block", "record_figures", "records_table", "render", "render_results", "results", "save_figure", "scope", "setup_notebook", "small_table", "splice_readme", "summaries", "tables", "takeaway", "timings", "timings_markdown", "unit_suffix", "update_markdown", "write_index", "write_timings"]
