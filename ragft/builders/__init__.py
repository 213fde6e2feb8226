"""Offline builders: derive `data/` from the real NumPy wheels (`python -m ragft.builders [corpora|qa|train|all]`), the
training pairs (`python -m ragft.builders.pairs`), the leak check both apply (`leaks`) and the own-documents benchmark.
The runtime never imports this package.
"""
