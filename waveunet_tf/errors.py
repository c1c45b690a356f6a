"""Errors that speak to the user: the CLI prints their message as one line, no traceback."""


class UserError(Exception):
    """Something the user gave us is wrong; the message says what, and what would be right. Exit code 1."""

    exit_code = 1


class UsageError(UserError):
    """A bad command-line argument or option value. Exit code 2."""

    exit_code = 2
