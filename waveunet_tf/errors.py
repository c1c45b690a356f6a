"""Errors that speak to the user: the CLI prints their message as one line, no traceback."""


class UserError(Exception):
    """Something the user gave us is wrong; the message says what, and what would be right. Exit code 1."""

    exit_code = 1


class UsageError(UserError):
    """A bad command-line argument or option value. Exit code 2."""

    exit_code = 2


def first_line(error) -> str:
    """The first line of an exception's (or a text's) message, for one-line reports; the exception's type name
    when it has no message."""
    text = str(error).strip()
    if text:
        return text.splitlines()[0]
    return type(error).__name__ if isinstance(error, BaseException) else ""
