"""pyro_air.cli.ais_options: the torch-free copy of the evaluate command's AIS options declares the
same options as pyro_air.evaluate.ais_cli.add_ais_arguments (flags, defaults, types, choices, help)."""
import argparse

from pyro_air.cli import ais_options
from pyro_air.evaluate import ais_cli


def declared(add) -> list:
    parser = argparse.ArgumentParser(add_help=False)
    add(parser)
    return [(a.option_strings, a.dest, a.default, a.type, a.choices, a.nargs, a.const, a.help, type(a).__name__)
            for a in parser._actions]


def test_the_copy_declares_the_options_of_ais_cli():
    assert declared(ais_options.add_ais_arguments) == declared(ais_cli.add_ais_arguments)
    assert len(declared(ais_cli.add_ais_arguments)) == 9
