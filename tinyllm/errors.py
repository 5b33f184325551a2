"""The one exception type for what a user did wrong (a bad file, flag or value): its message is
one line saying what was wrong and what to do. It is a ``ValueError``, so callers that catch
``ValueError`` still catch it.

The CLI prints it as one line and exits with status 1. Anything else that goes wrong is a bug
in tinyllm and surfaces as one, with its traceback.
"""


class TinyLLMError(ValueError):
    pass
