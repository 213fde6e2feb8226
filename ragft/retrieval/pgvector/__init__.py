"""PostgreSQL + pgvector behind the retriever interface: the server (embedded or by URL) and the store.
"""
