"""The one exception type a user sees.

Raise `UserError` for bad input (a file, line, field or value the user can fix). The CLI prints its
message without a traceback and exits non-zero; anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """Bad input or a refused request; the message says what is wrong and what to do."""
