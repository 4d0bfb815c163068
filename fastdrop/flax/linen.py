"""``fastdrop.flax.linen.Dropout``: a drop-in for ``flax.linen.Dropout`` on fastdrop's kernels."""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from . import _common

__all__ = ["Dropout"]


class Dropout(nn.Dropout):
    """Dropout for ``flax.linen``, as ``nn.Dropout``, with fastdrop's masks.

    A subclass of ``flax.linen.Dropout`` with its attributes and call; the mask comes from
    ``fastdrop.jax.dropout`` seeded with the key of the ``rng_collection`` stream
    (``self.make_rng('dropout')``), so it is differentiable in both modes and equals
    ``fastdrop.dropout`` for that key's 64 bits. Provide the key as for Flax's own:
    ``model.apply(variables, x, rngs={'dropout': key})``.

    Parameters
    ----------
    rate : float
        The drop probability in [0, 1] (not the keep rate); fastdrop resolves it to a
        multiple of ``2**-bits`` (``fastdrop.effective_p``).
    broadcast_dims : sequence of int
        Axes that share one mask (the mask has size 1 there), as in Flax.
    deterministic : bool, optional
        True returns the inputs unchanged; may be given here or at call time.
    rng_collection : str
        The rng collection of the seeds, ``'dropout'`` by default.
    bits : {16, 32, 8}
        fastdrop's bits per draw (16 by default).

    Raises
    ------
    TypeError, ValueError
        At call time: a bad rate, broadcast_dims or bits (naming the argument); as
        Flax's own when deterministic is given neither here nor at call time.

    Examples
    --------
    >>> import jax, jax.numpy as jnp, flax.linen as nn
    >>> import fastdrop.flax.linen as fnn
    >>> class MLP(nn.Module):
    ...     @nn.compact
    ...     def __call__(self, x, train):
    ...         x = nn.Dense(4)(x)
    ...         return fnn.Dropout(0.5, deterministic=not train)(x)
    >>> model = MLP()
    >>> x = jnp.ones((1, 3))
    >>> variables = model.init(jax.random.key(0), x, train=False)
    >>> y = model.apply(variables, x, train=True, rngs={"dropout": jax.random.key(1)})
    >>> y.shape
    (1, 4)
    >>> y_eval = model.apply(variables, x, train=False)       # the identity
    >>> bool(jnp.all((y == 0) | (y == 2 * y_eval)))         # dropped, or kept and scaled
    True
    """

    bits: int = 16

    @nn.compact
    def __call__(self, inputs: Any, deterministic: bool | None = None,
                 rng: Any = None) -> jax.Array:
        """Applies the dropout mask (or nothing when deterministic).

        Parameters
        ----------
        inputs : jax.Array
            The inputs to drop.
        deterministic : bool, optional
            Overrides (must agree with) the attribute, as in Flax.
        rng : JAX key, optional
            The key of the mask; by default ``self.make_rng(self.rng_collection)``.

        Returns
        -------
        jax.Array
            The inputs, dropped and scaled by ``1 / (1 - effective_p(rate))`` while
            training; the inputs themselves when deterministic or rate is 0.

        Raises
        ------
        TypeError, ValueError
            A bad rate, broadcast_dims or bits.
        """
        deterministic = nn.merge_param("deterministic", self.deterministic, deterministic)
        rate = _common.check_rate(self.rate)
        if rate == 0.0 or deterministic:
            return inputs
        if rate == 1.0:  # as Flax: no gradient through dropped inputs
            return jnp.zeros_like(inputs)
        if rng is None:
            rng = self.make_rng(self.rng_collection)
        return _common.apply(inputs, rate, rng, self.broadcast_dims, self.bits)
