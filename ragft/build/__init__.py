"""Offline builders: derive `data/` from the real NumPy wheels (`python -m ragft.build [corpora|qa|train|all]`), the
training pairs (`python -m ragft.build.pairs`), the leak check both apply (`leaks`) and the own-documents benchmark.
The runtime never imports this package.
"""
