import sys

from pyro_air import console_main

sys.exit(console_main())
