"""Imports every command module so that each registers its commands on the shared `app`."""

from nextbest.cli import personalization  # noqa: F401
from nextbest.cli import evaluation  # noqa: F401
from nextbest.cli import planning  # noqa: F401
from nextbest.cli import synth  # noqa: F401
from nextbest.cli import rl  # noqa: F401
from nextbest.cli import pretrain  # noqa: F401
from nextbest.cli import budget  # noqa: F401
