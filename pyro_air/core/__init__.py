"""The model/guide contract: names and protocols every other layer agrees on (docs/design.md).

- ``sites``: the sample-site and plate names of the model/guide contract.
- ``plates``: the one data plate that models and guides share.
- ``protocols``: what a model and a guide are (typing protocols), including the direct-scoring
  protocol that lets objectives score a pair without Pyro's tracing.
- ``scoring``: the default direct-scoring objects (a wrapped distribution; a diagonal Gaussian)
  and the switch that turns the models' and guides' specialized formulas off.
- ``validation``: the input checks every layer shares (shapes, dtypes, binary data, options).
- ``distributions``: the distributions models and guides share.
- ``registry``: name -> constructor registries with declared capabilities.
- ``seeds``: seeding and the named random streams.

Only the contract lives here: CPU tuning is ``pyro_air.backend`` (below), the shared tools (process
groups, progress bars, atomic files, optional packages, image shapes) are ``pyro_air.support``
(above).

Nothing here imports a model, a guide, an objective or the training loop.
"""
