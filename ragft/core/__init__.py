"""The ground floor: paths, file helpers, the content-hash cache, run profiles, the house answer format, quiet logs.

It imports nothing else of ragft.
"""
