"""Imports every command module so that each registers its commands on the shared `app`."""

from nextbest.cli import (
    budget,  # noqa: F401
    evaluation,  # noqa: F401
    keys,  # noqa: F401
    personalization,  # noqa: F401
    planning,  # noqa: F401
    pretrain,  # noqa: F401
    rl,  # noqa: F401
    serving,  # noqa: F401
    synth,  # noqa: F401
    tune,  # noqa: F401
)
