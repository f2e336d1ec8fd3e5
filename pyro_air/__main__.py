import sys

from pyro_air.cli import main

sys.exit(main())
