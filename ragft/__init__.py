"""ragft: RAG, QLoRA fine-tuning and their hybrid, side by side, on NumPy's real API reference."""

__version__ = "0.1.0"
