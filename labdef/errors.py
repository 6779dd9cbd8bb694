"""Errors the CLI shows as one line: the message is written for the person at the terminal."""


class LabError(RuntimeError):
    """A failure with a message fit to print as `lab: error: <message>`."""
