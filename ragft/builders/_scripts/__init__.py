"""Helper scripts run in a subprocess under a specific NumPy version (never imported by ragft itself)."""
