"""Old import path of the AIR comparison helpers (``air_spec``, ``evaluate_row``,
``bound_per_datapoint``), kept so that code written against it still runs: they live in
``pyro_air.compare`` now, and the command line holds none of them (docs/design.md, "Layout").
``paired_difference`` here is the old row form, ``pyro_air.compare.paired_estimate``."""
from pyro_air.compare import air_spec, bound_per_datapoint, evaluate_row  # noqa: F401
from pyro_air.compare import paired_estimate as paired_difference  # noqa: F401
