"""ipywidgets panels that wire records to live figures; no math."""
