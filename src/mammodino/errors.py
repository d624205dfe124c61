"""Exceptions that carry a message meant for the user, not a traceback."""


class UserError(Exception):
    """Bad input, config or environment. The CLI prints the message and exits 2."""


class ConfigError(UserError):
    """A config key or value is wrong; the message names the key."""


class SkipFile(Exception):
    """A file that cannot become a training image. ``reason`` goes to the manifest."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason
