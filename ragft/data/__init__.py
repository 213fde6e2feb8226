"""Documents and QA items: NumPy's extracted API reference and users' own folders (`corpus`), the QA set and users'
training pairs (`datasets`). Loaders only: the offline builders that write `data/` live in `ragft.build`.
"""
