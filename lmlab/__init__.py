"""lmlab: build your own language model end to end, on your own machine."""

from lmlab.errors import LmlabError

__all__ = ["LmlabError"]
__version__ = "0.1.0"
