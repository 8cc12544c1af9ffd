"""Make ``lm_eval --model lmlab`` work: register lmlab in lm-evaluation-harness's model registry.

lm-eval has no plugin discovery: its registry learns the built-in models when ``lm_eval.models``
runs (a table of lazy ``"module:Class"`` strings), and nothing else. So every interpreter of the
environment imports this module early, through a one-line ``.pth`` file that
`lmlab.evaluate.lm_eval_adapter.install_hook` writes into site-packages, and it watches for
``lm_eval.models``:

    interpreter start ──> lmlab_lm_eval.pth ──> this module: a finder joins sys.meta_path
    ...
    import lm_eval.models ──> the finder wraps its loader ──> the module runs as usual
                                                          └─> then "lmlab" is registered, lazily

The registration is a string too, so the adapter (and torch behind it) is only imported when a
run asks for ``--model lmlab``. Interpreters that never import lm-eval pay one string comparison
per import; nothing here imports more than ``sys`` (not even ``typing``: the annotations are
plain ``object``), and nothing fails when lm-eval is absent.
"""

from __future__ import annotations

import sys

MODEL_NAME = "lmlab"
TARGET = "lmlab.evaluate.lm_eval_adapter:LmlabLM"
WATCHED = "lm_eval.models"


def register() -> None:
    """Register "lmlab" in lm-eval's model registry, unless a model of that name is already there."""
    # Imported only now, after lm_eval.models has loaded: the hook runs in every interpreter and must
    # cost nothing (nor fail) where lm-eval is never used or not installed.
    from lm_eval.api.registry import model_registry

    # The adapter may have registered the class itself; a second entry would be a collision error.
    if MODEL_NAME not in model_registry:
        model_registry.register(MODEL_NAME, target=TARGET)


def _register_quietly() -> None:
    # A hook that every interpreter loads must never break lm-eval: a registry that changed shape
    # in a future lm-eval costs the "lmlab" model only, with a warning saying so.
    try:
        register()
    except Exception as exc:  # noqa: BLE001
        import warnings  # only on this rare path: the hook imports nothing but sys at interpreter start

        warnings.warn(f"lmlab: could not register the 'lmlab' model with lm-eval: {exc}", stacklevel=2)


class _RegisterAfterLoading:
    """A loader that runs the real one, then registers lmlab; anything else is the real loader's."""

    def __init__(self, loader: object) -> None:
        self._loader = loader

    def create_module(self, spec: object) -> object:
        return self._loader.create_module(spec)

    def exec_module(self, module: object) -> None:
        self._loader.exec_module(module)
        _register_quietly()

    def __getattr__(self, name: str) -> object:
        return getattr(self._loader, name)


class LmEvalModelsFinder:
    """A `sys.meta_path` finder that answers only for ``lm_eval.models``, by asking the finders
    after it and handing back their spec with the loader wrapped."""

    def find_spec(self, fullname: str, path: object, target: object = None) -> object:
        if fullname != WATCHED:
            return None
        for finder in sys.meta_path:
            find_spec = getattr(finder, "find_spec", None)
            if finder is self or find_spec is None:
                continue
            spec = find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _RegisterAfterLoading(spec.loader)
                return spec
        return None


def install() -> None:
    """Put the finder on `sys.meta_path` once; if lm-eval's models are already loaded, register now."""
    if any(isinstance(finder, LmEvalModelsFinder) for finder in sys.meta_path):
        return
    sys.meta_path.insert(0, LmEvalModelsFinder())
    if WATCHED in sys.modules:
        _register_quietly()


install()
