"""Errors a user can act on.

Every error the workbench raises on bad input is a `SerError` whose message names the
file, row or value at fault and says what is wrong. The CLI prints the message without
a traceback; library users can catch `SerError` as a whole or one of its kinds.
"""


class SerError(Exception):
    """Base class: bad input or configuration that the user can fix."""


class ConfigError(SerError, ValueError):
    """A configuration value is out of range or unknown."""


class ManifestError(SerError, ValueError):
    """A corpus manifest is malformed; the message lists every bad row."""


class AudioError(SerError, ValueError):
    """An audio file cannot be used (missing, corrupt, silent, NaN, stereo, wrong rate)."""


class CorpusError(SerError, ValueError):
    """A corpus' own metadata (listening-test table, EmoEvaluation file) is malformed."""


class TrainingError(SerError, RuntimeError):
    """Training cannot go on: a non-finite loss (naming the batch's utterances) or a bad checkpoint."""
