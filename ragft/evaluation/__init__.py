"""Grading and metrics as pure functions of answers and rankings: scores, retrieval metrics, intervals and claims.
"""
