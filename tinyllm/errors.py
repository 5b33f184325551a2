"""The one exception type tinyllm raises for bad input: its message says what was wrong and
what to do. The CLI prints it as one line and exits non-zero."""


class TinyLLMError(Exception):
    pass
