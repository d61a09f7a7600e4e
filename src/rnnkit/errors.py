"""The one error class of rnnkit: bad input that the user can fix.

Every reader, checkpoint loader and command raises a subclass of :class:`RnnkitError` whose
message names the file, line or field and says what was expected; the command line prints it
on one line and exits with code 2. It is a ``ValueError``, so code that caught ``ValueError``
before still does.
"""


class RnnkitError(ValueError):
    """Bad input: the message names the file/line/field and what was expected."""
