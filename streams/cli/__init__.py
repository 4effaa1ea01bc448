"""The command line: `lifecycle` and its subcommands, the demo, the live view and the simulator."""

from streams.cli.commands import main

__all__ = ["main"]
