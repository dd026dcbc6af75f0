"""The one exception type the CLI turns into a clean message instead of a traceback."""


class TinyCifarError(Exception):
    """A problem the user can fix: the message says what is wrong and how to fix it."""


def first_line(e: BaseException) -> str:
    """A third-party error's first line, cut short: what a one-line message quotes of it."""
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else type(e).__name__
