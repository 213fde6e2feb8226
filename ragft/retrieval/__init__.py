"""Chunks, vectors, indexes and retrievers: chunking, embeddings, the hnswlib index, BM25 and hybrid fusion, and what
a knowledge update costs. It knows nothing of the models that answer, nor of how answers are graded.
"""
