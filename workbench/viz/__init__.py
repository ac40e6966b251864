"""Plotly figure builders: they take records and tables, and hold no training logic."""
