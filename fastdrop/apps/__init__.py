"""Applications built on fastdrop's public API: the command line (`cli`), `fastdrop bench`
(`bench`, over the timing helpers of `measure`), the dropout study (`study`, with its
NumPy MLP `mlp`).  Nothing in the library imports this package."""
