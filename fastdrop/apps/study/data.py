"""The data: scikit-learn's 8x8 digits, split into train / val / test."""
from __future__ import annotations

import numpy as np

from .config import StudyConfig
from .extras import require_extra

__all__ = ["load_data"]

_DATA_CACHE: dict = {}


def load_data(cfg: StudyConfig) -> dict:
    """The digits split into train / val / test.

    The splits are stratified and fixed by ``cfg.split_seed``; the pixels are scaled to
    [0, 1], in ``cfg.dtype``. The result is cached per (sizes of the splits, seed, dtype).

    Parameters
    ----------
    cfg : StudyConfig
        Gives ``n_train``, ``n_val``, ``split_seed`` and ``dtype``.

    Returns
    -------
    dict
        ``x_train``, ``y_train``, ``x_val``, ``y_val``, ``x_test``, ``y_test`` (labels as
        int64).

    Raises
    ------
    ImportError
        Without scikit-learn.
    """
    key = (cfg.n_train, cfg.n_val, cfg.split_seed, cfg.dtype)
    if key in _DATA_CACHE:
        return _DATA_CACHE[key]
    require_extra("sklearn")
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(cfg.dtype)
    y = y.astype(np.int64)
    x_tr, x_rest, y_tr, y_rest = train_test_split(
        x, y, train_size=cfg.n_train, stratify=y, random_state=cfg.split_seed)
    x_va, x_te, y_va, y_te = train_test_split(
        x_rest, y_rest, train_size=cfg.n_val, stratify=y_rest, random_state=cfg.split_seed)
    data = {"x_train": x_tr, "y_train": y_tr, "x_val": x_va, "y_val": y_va,
            "x_test": x_te, "y_test": y_te}
    _DATA_CACHE[key] = data
    return data
