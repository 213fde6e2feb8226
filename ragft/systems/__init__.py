"""Arms and the one answering path: a `System` answers questions (`answer`, `compare`; the dashboard's `configure`,
`ask`), `make_arms` / `arms_for` build notebooks 05 and 06's arms from `ArmSettings`, `tuned_adapters` gets their
adapters (the RAFT draws judged on dev: `raft_draws`). `pipeline` is notebook 03's hand-held RAG path.
>>> from ragft import systems; systems.compare(items, systems.arms_for(index, adapters, systems.ArmSettings()))  # doctest: +SKIP
"""

from ..generation.answers import CACHE_VERSION, AnswerCache, as_cache, generate_unique, generation_record
from ..generation.pool import ModelPool, adapter_hash, generate_chats
from ..training.draws import TRAINING_SETS, TunedAdapters, raft_data
from .answering import answer, ask, compare, configure, gate
from .arms import (
    QUOTE_NEW_TOKENS,
    AnswerSettings,
    ArmSettings,
    DrawSettings,
    RaftRecipe,
    RetrievalSettings,
    TrainingSettings,
    arms_for,
    make_arms,
)
from .draws import (
    DRAW_METRICS,
    DRAW_RANKING,
    RaftDraws,
    dev_threshold,
    draw_arm_name,
    draw_dev_set,
    draw_system,
    pick_draw,
    raft_draws,
    tuned_adapters,
)
from .system import ARMS, PROMPTS, System, adapter_label, contrast_messages, retriever_kind, system_messages

__all__ = [
    "ARMS", "CACHE_VERSION", "DRAW_METRICS", "DRAW_RANKING", "PROMPTS", "QUOTE_NEW_TOKENS", "TRAINING_SETS",
    "AnswerCache", "AnswerSettings", "ArmSettings", "DrawSettings", "ModelPool", "RaftDraws", "RaftRecipe",
    "RetrievalSettings", "System", "TrainingSettings", "TunedAdapters",
    "adapter_hash", "adapter_label", "answer", "arms_for", "as_cache", "ask", "compare", "configure",
    "contrast_messages", "dev_threshold", "draw_arm_name", "draw_dev_set", "draw_system", "gate", "generate_chats", "generate_unique",
    "generation_record", "make_arms", "pick_draw", "raft_data", "raft_draws", "retriever_kind", "system_messages",
    "tuned_adapters",
]
