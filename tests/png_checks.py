"""What a test asks of a plot it finds on disk: a PNG of a sensible size with something drawn on it."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import numpy as np


def drawn_png(path: Path, min_width: int = 200, min_height: int = 150) -> np.ndarray:
    """The image at `path` as (height, width, channels), asserting it is a PNG of at least the given
    size whose pixels are not one colour (nor a handful: a blank canvas with a frame)."""
    assert Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{path}: not a PNG"
    image = matplotlib.image.imread(path)
    height, width = image.shape[:2]
    assert width >= min_width and height >= min_height, f"{path}: {width}x{height}"
    colours = np.unique((image.reshape(-1, image.shape[2]) * 255).round(), axis=0)
    assert len(colours) > 16, f"{path}: only {len(colours)} colours; nothing drawn?"
    return image


def saved_figures(monkeypatch) -> list:
    """Every matplotlib Figure saved from now on in the test, so that it can count what a plot function drew."""
    from matplotlib.figure import Figure

    saved = []
    save = Figure.savefig

    def keep(figure: Figure, *args, **kwargs):
        saved.append(figure)
        return save(figure, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    return saved
