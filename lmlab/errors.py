"""The one error type for user mistakes.

A `LmlabError` carries one sentence naming the file, line, field or request at fault. The CLI prints
it as ``error: <sentence>`` and exits with status 2; a traceback is kept for lmlab's own bugs.
"""


class LmlabError(Exception):
    """A mistake in what the user handed lmlab: bad input, bad config, corrupt checkpoint."""
