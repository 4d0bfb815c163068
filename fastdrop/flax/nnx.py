"""``fastdrop.flax.nnx.Dropout``: a drop-in for ``flax.nnx.Dropout`` on fastdrop's kernels."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from .._core.args import check_bits
from . import _common

__all__ = ["Dropout"]


class Dropout(nnx.Dropout):
    """Dropout for ``flax.nnx``, as ``nnx.Dropout``, with fastdrop's masks.

    A subclass of ``flax.nnx.Dropout`` with its arguments, ``train()`` / ``eval()`` /
    ``nnx.view`` behaviour and seeding: each training call takes a fresh key from the
    module's rng stream (``rngs.dropout()``, forked at construction as Flax does) or from
    the ``rngs`` given at call time, and the mask comes from ``fastdrop.jax.dropout``
    seeded with that key (differentiable in both modes, equal to ``fastdrop.dropout``
    for the key's 64 bits).

    Parameters
    ----------
    rate : float
        The drop probability in [0, 1] (not the keep rate).
    broadcast_dims : sequence of int
        Axes that share one mask, as in Flax.
    deterministic : bool, optional
        True returns the inputs unchanged (``model.eval()`` sets it); False by default.
    rng_collection : str
        The stream of the keys in an ``nnx.Rngs``, ``'dropout'`` by default.
    rngs : nnx.Rngs or nnx.RngStream, optional
        Where the keys come from (may instead be given at call time).
    bits : {16, 32, 8}
        fastdrop's bits per draw (16 by default).

    Raises
    ------
    TypeError
        rngs is neither an Rngs, an RngStream nor None; bits is not an int.
    ValueError
        rate outside [0, 1], bits not 8, 16 or 32.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> import fastdrop.flax.nnx as fnnx
    >>> drop = fnnx.Dropout(0.5, rngs=nnx.Rngs(dropout=0))
    >>> y = drop(jnp.ones((2, 8)))
    >>> sorted(set(y.ravel().tolist()))
    [0.0, 2.0]
    >>> drop.eval()
    >>> drop(jnp.ones(3))
    Array([1., 1., 1.], dtype=float32)
    """

    def __init__(self, rate: float, *, broadcast_dims: Sequence[int] = (),
                 deterministic: bool | None = False, rng_collection: str = "dropout",
                 rngs: nnx.Rngs | nnx.RngStream | None = None, bits: int = 16):
        super().__init__(_common.check_rate(rate), broadcast_dims=broadcast_dims,
                         deterministic=deterministic, rng_collection=rng_collection,
                         rngs=rngs)
        self.bits = check_bits(bits)

    def __call__(self, inputs: Any, *, deterministic: bool | None = None,
                 rngs: nnx.Rngs | nnx.RngStream | jax.Array | None = None) -> jax.Array:
        """Applies the dropout mask (or nothing when deterministic).

        Parameters
        ----------
        inputs : jax.Array
            The inputs to drop.
        deterministic : bool, optional
            Takes precedence over the attribute.
        rngs : nnx.Rngs, nnx.RngStream or JAX key, optional
            Takes precedence over the module's rngs.

        Returns
        -------
        jax.Array
            The inputs, dropped and scaled while training; the inputs themselves when
            deterministic or rate is 0.

        Raises
        ------
        ValueError
            deterministic is given nowhere, or no rngs while training.
        TypeError
            rngs of another type.
        """
        if deterministic is None:
            deterministic = self.deterministic
        if deterministic is None:
            raise ValueError("No `deterministic` argument was provided to Dropout: pass it "
                             "to the constructor or the call, or use model.train() / "
                             "model.eval()")
        if self.rate == 0.0 or deterministic:
            return inputs
        if self.rate == 1.0:  # as Flax
            return jnp.zeros_like(inputs)
        if rngs is None:
            rngs = self.rngs
        if rngs is None:
            raise ValueError("`deterministic` is False, but no `rngs` argument was provided "
                             "to Dropout as either a __call__ argument or class attribute.")
        if isinstance(rngs, nnx.Rngs):
            key = rngs[self.rng_collection]()
        elif isinstance(rngs, nnx.RngStream):
            key = rngs()
        elif isinstance(rngs, jax.Array):
            key = rngs
        else:
            raise TypeError(f"rngs must be a Rngs, RngStream or jax.Array, got "
                            f"{type(rngs).__name__}")
        return _common.apply(inputs, self.rate, key, self.broadcast_dims, self.bits)
