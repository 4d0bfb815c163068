"""The study's optional dependencies, scikit-learn and matplotlib (``fastdrop[study]``)."""
from __future__ import annotations

_EXTRA_HINT = "pip install fastdrop[study]"


def require_extra(name: str):
    """Import an optional dependency of the study, or say how to get it.

    Parameters
    ----------
    name : {"sklearn", "matplotlib"}
        The dependency.

    Returns
    -------
    module
        ``sklearn``, or ``matplotlib.pyplot`` on the Agg backend.

    Raises
    ------
    ImportError
        When it is not installed; the message names ``pip install fastdrop[study]``.
    ValueError
        For any other name.
    """
    try:
        if name == "sklearn":
            import sklearn.datasets  # noqa: F401
            import sklearn.model_selection  # noqa: F401
            import sklearn
            return sklearn
        if name == "matplotlib":
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
            return plt
    except ImportError as exc:
        raise ImportError(f"the dropout study needs {name} (scikit-learn and matplotlib): "
                          f"{_EXTRA_HINT}") from exc
    raise ValueError(name)
