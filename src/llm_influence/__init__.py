"""Influence functions for language models: EK-FAC, TF-IDF filtering and the studies of Grosse et al. (2023)."""

__version__ = "0.1.0"
