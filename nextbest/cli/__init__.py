"""The `nextbest` command line: a thin layer over the library."""

from nextbest.cli.app import app, main

__all__ = ["app", "main"]
