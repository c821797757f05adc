"""The two kinds of failure a user can cause, kept apart from bugs.

`UserError` ends a command with one clear line and exit status 2 (a missing folder, a bad
option value). `BadFile` is raised while reading one input file; the caller records its
message as the reason the file was skipped and goes on with the rest.
"""


class UserError(Exception):
    """A mistake in what the user asked for: reported as one line, exit status 2."""


class BadFile(Exception):
    """One input file cannot be used; the message is the reason, without the path."""
