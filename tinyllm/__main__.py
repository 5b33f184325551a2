"""``python -m tinyllm COMMAND ...``: the same as ``tinyllm COMMAND ...``."""
from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
