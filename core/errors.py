"""The one exception type users see: a message naming the problem and the fix."""


class MCUForgeError(Exception):
    """A user-facing error. The CLI prints it on one line and exits with status 2."""
