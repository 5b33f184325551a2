"""``python -m tinyllm COMMAND ...``: the same as ``tinyllm COMMAND ...``."""
from .cli import command

if __name__ == "__main__":
    command()
