"""Tools the working layers share that are neither the model/guide contract nor the hardware
(docs/design.md, "Layers"): it sits just above ``pyro_air.core`` (``parallel`` draws an epoch's
order from core's seeds) and below every layer that uses it.

- ``parallel``: ``torch.distributed`` process groups, sharding and collectives (train, evaluate).
- ``progress``: one bar over a command's work (train, evaluate, diagnostics, compare, the command line),
  and ``say``, a line of output above it.
- ``atomic``: text files and figures written by a temporary file and a rename (train, evaluate,
  diagnostics; checkpoints: ``pyro_air.storage``).
- ``extras``: optional packages, found or a "pip install ..." error (data, train).
- ``images``: image shapes of flattened data (the convolutional models and guides, the command line).

Nothing here imports a model, a guide, an objective or the training loop; ``images`` imports
nothing but ``math``, so the command line's parsing may use it without torch.
"""
