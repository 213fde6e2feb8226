"""Silence the known harmless messages of dependencies, each by its exact text, where it is emitted.

`install()` runs once when ragft is imported, so notebooks, the report and the dashboard show only what a learner should
read. Not a blanket filter: any other warning or log line, including other messages from the same libraries, still
shows; log levels are left as they are. To see everything again, call `uninstall()`.
"""

from __future__ import annotations

import logging
import re
import warnings

# bitsandbytes (0.50, CPUs with avx512_bf16) logs this on import through its module logger, with `%s` the ImportError of
# the optional `kernels` package; bitsandbytes falls back to its own kernel. `kernels` downloads from a model hub: we do
# not install it, so the message says nothing the learner can act on.
BNB_LOGGER = "bitsandbytes.backends.cpu.ops"
BNB_KERNELS_MESSAGE = ("Failed to load CPU gemm_4bit_forward from kernels-community: %s. Please make sure you already "
                       "`pip install kernels` and the kernels >= 0.11.1")

# transformers 5 warns when anything reads the deprecated property; peft's `prepare_model_for_kbit_training` and
# `PeftModel` read it, not our code.
GRADIENT_CHECKPOINTING_MESSAGE = ("`is_gradient_checkpointing` is deprecated and will be removed in v6. "
                                  "Use `is_activation_checkpointing` instead.")
GRADIENT_CHECKPOINTING_MODULE = "transformers.modeling_utils"


class ExactMessageFilter(logging.Filter):
    """Drops log records whose unformatted message is exactly one of `messages`; lets every other record through."""

    def __init__(self, messages: tuple[str, ...]):
        super().__init__()
        self.messages = frozenset(messages)

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg not in self.messages


_LOG_FILTER = ExactMessageFilter((BNB_KERNELS_MESSAGE,))
_WARNING_FILTER = dict(action="ignore", message=re.escape(GRADIENT_CHECKPOINTING_MESSAGE) + r"\Z",
                       category=FutureWarning, module=re.escape(GRADIENT_CHECKPOINTING_MODULE) + r"\Z")


def install() -> None:
    """Add the two filters (idempotent). Works before or after the libraries are imported."""
    logger = logging.getLogger(BNB_LOGGER)  # the same object bitsandbytes' `logging.getLogger(__name__)` returns
    if _LOG_FILTER not in logger.filters:
        logger.addFilter(_LOG_FILTER)
    if not any(_is_ours(f) for f in warnings.filters):
        warnings.filterwarnings(**_WARNING_FILTER)


def uninstall() -> None:
    """Remove both filters: every message shows again."""
    logging.getLogger(BNB_LOGGER).removeFilter(_LOG_FILTER)
    # an "ignore" result is never cached in a module's __warningregistry__, so dropping the entry is enough
    warnings.filters[:] = [f for f in warnings.filters if not _is_ours(f)]


def _is_ours(f: tuple) -> bool:
    action, message, category, module, lineno = f
    return (action == "ignore" and category is FutureWarning and message is not None and module is not None
            and message.pattern == _WARNING_FILTER["message"] and module.pattern == _WARNING_FILTER["module"])
