"""The one error type for user mistakes.

A `LmlabError` carries one sentence naming the file, line, field or request at fault. The CLI prints
it as ``error: <sentence>`` and exits with status 2; a traceback is kept for lmlab's own bugs.
`warn` is the same for what lmlab did but the user should know: ``warning: <sentence>``, and it goes on.
"""

import warnings


class LmlabError(Exception):
    """A mistake in what the user handed lmlab: bad input, bad config, corrupt checkpoint."""


class LmlabWarning(UserWarning):
    """Something the user asked for that lmlab did, but not as asked, or on too little to mean much
    (a vocabulary smaller than requested, a validation split of one document). The CLI prints it as
    one ``warning: <sentence>`` line on stderr and carries on."""


def warn(message: str) -> None:
    """Raise a `LmlabWarning` saying what happened and why, pointing at the caller's caller."""
    warnings.warn(message, LmlabWarning, stacklevel=3)
