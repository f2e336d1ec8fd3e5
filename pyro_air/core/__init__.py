"""The ground floor: names and protocols every other layer agrees on (docs/design.md).

- ``sites``: the sample-site and plate names of the model/guide contract.
- ``plates``: the one data plate that models and guides share.
- ``protocols``: what a model and a guide are (typing protocols), including the direct-scoring
  protocol that lets objectives score a pair without Pyro's tracing.
- ``scoring``: the default direct-scoring objects (a wrapped distribution; a diagonal Gaussian)
  and the switch that turns the models' and guides' specialized formulas off.

Nothing here imports a model, a guide, an objective or the training loop.
"""
