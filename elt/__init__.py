"""ELT: Elastic Looped Transformers for visual generation."""

__version__ = "0.1.0"
