"""What people touch: the `ragft` command line and the notebooks' widgets.
"""
