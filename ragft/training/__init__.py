"""Training pairs, RAFT data, the 4-bit base, LoRA fine-tuning and adapters as files, memory measured and projected.
"""
