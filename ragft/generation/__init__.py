"""Models, prompts and decoding: the offline model registry, chat prompts and greedy generation, optional fast engines.
"""
