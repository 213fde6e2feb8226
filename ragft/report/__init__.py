"""The notebooks' figures and the HTML report: the setup banner, recorded figures, the index page and its tables.
"""
