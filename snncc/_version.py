"""The snncc version (one definition; builds record it)."""
__version__ = "0.1.0"
