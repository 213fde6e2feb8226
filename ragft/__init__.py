"""ragft: RAG, QLoRA fine-tuning and their hybrid, side by side, on NumPy's real API reference."""

from .core import quiet

__version__ = "0.1.0"

quiet.install()  # known harmless dependency messages, each by its exact text (see ragft/core/quiet.py)
