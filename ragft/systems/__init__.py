"""Arms and the one answering path: a `System` answers questions; `pipeline` is notebook 03's hand-held RAG path.
"""
