"""lmlab: build your own language model end to end, on your own machine."""

from lmlab.errors import LmlabError

__all__ = ["LmlabError", "pipeline"]
__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    if name == "pipeline":  # imported on first use, so that `import lmlab` stays light
        from lmlab.pipelines import pipeline

        return pipeline
    raise AttributeError(f"module 'lmlab' has no attribute {name!r}")
