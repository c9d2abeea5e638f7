"""Errors a user can act on.

Every error that bad input can cause is a `NextbestError`; its message names the file,
column or row and says what was expected. The CLI prints it as one red line and exits
with code 2. Anything else escaping to the CLI is a bug.
"""


class NextbestError(Exception):
    """Base class of all errors caused by the user's input or set-up."""


class ConfigError(NextbestError):
    """Hyperparameters that do not parse or validate, or a required setting that is missing."""


class SchemaError(NextbestError):
    """A table that does not match the schema: missing or extra column, unknown category, bad value."""


class DataError(NextbestError):
    """A file that cannot be read as a table, or whose contents break the data contract."""


class ExperimentError(NextbestError):
    """A missing or inconsistent experiment directory, checkpoint or experience store."""
