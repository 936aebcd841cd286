"""The one error type for bad user input; the CLI turns it into a one-line message and exit code 2."""


class TaskarithError(Exception):
    """A user-facing error: the message names the file, key or value at fault and what was expected."""
