"""What a study depends on: ``StudyConfig``, its presets, and ``RunSpec`` (one run)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["StudyConfig", "RunSpec", "QUICK", "DEFAULT", "FULL", "widened"]


@dataclass(frozen=True)
class StudyConfig:
    """Everything a study run depends on (the report prints it)."""

    sizes: tuple = (64, 512, 512, 10)
    n_train: int = 200          # a small training split, so that p = 0 overfits
    n_val: int = 600            # validation split; the rest of the 1797 digits is the test split
    split_seed: int = 0
    epochs: int = 60
    batch: int = 32
    lr: float = 0.01
    momentum: float = 0.9
    dtype: str = "float32"      # float64 works too (about 4x slower here)
    rates: tuple = tuple(round(0.1 * i, 1) for i in range(10))   # hidden p: 0.0 .. 0.9
    input_rates: tuple = (0.0, 0.1, 0.2, 0.3)
    input_hidden_p: float = 0.5  # hidden p used with the input-dropout grid
    mode_p: float = 0.5          # p of the classic-versus-inverted comparison (claim 4)
    mc_samples: int = 32         # masks in the Monte Carlo expectation checks (claim 4)
    capacity_width: int = 16     # narrow hidden width of claim 5
    capacity_p: float = 0.5      # its dropout rate; the widened net has width / (1 - p)
    seeds: tuple = (0, 1, 2)
    converge_frac: float = 0.99  # converged: val accuracy >= this fraction of the run's best
    timing_rounds: int = 7       # rounds of the interleaved epoch-time benchmark (claim 3)

    def to_dict(self) -> dict:
        """The configuration as a plain dict (as ``results.json`` and the report hold it).

        Returns
        -------
        dict
            Field name to value, in field order.
        """
        return asdict(self)


QUICK = StudyConfig(sizes=(64, 32, 32, 10), n_train=120, n_val=200, epochs=4, rates=(0.0, 0.5),
                    input_rates=(0.0, 0.2), mc_samples=4, capacity_width=8, seeds=(0,),
                    timing_rounds=2)
DEFAULT = StudyConfig()
FULL = StudyConfig(epochs=120, seeds=(0, 1, 2, 3, 4), input_rates=(0.0, 0.1, 0.2, 0.3, 0.5),
                   mc_samples=64)


@dataclass(frozen=True)
class RunSpec:
    """One training run."""

    width: int            # hidden width (every hidden layer)
    hidden_p: float
    input_p: float
    mode: str
    seed: int
    expectation_check: bool = False

    def sizes(self, cfg: StudyConfig) -> tuple:
        """The layer sizes of this run's network.

        Parameters
        ----------
        cfg : StudyConfig
            Gives the input and output sizes and the number of hidden layers.

        Returns
        -------
        tuple of int
            ``cfg.sizes`` with every hidden layer ``self.width`` wide.
        """
        return (cfg.sizes[0],) + (self.width,) * (len(cfg.sizes) - 2) + (cfg.sizes[-1],)


def widened(width: int, p: float) -> int:
    """The hidden width that keeps ``width`` units on average at dropout rate ``p``.

    Parameters
    ----------
    width : int
        The narrow width.
    p : float
        The dropout rate, in [0, 1).

    Returns
    -------
    int
        ``round(width / (1 - p))``.
    """
    return int(round(width / (1.0 - p)))
