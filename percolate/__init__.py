"""Percolate: batch prediction over stored video."""

__version__ = "0.1.0"
