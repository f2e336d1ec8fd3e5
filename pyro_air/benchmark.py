"""Old import path of the encoder benchmark, kept so that code written against it still runs: the
protocol is ``pyro_air.compare`` now (docs/design.md, "Layout"). Import from there."""
from pyro_air.compare import *  # noqa: F401,F403
