"""``python -m tinyllm.explore --model DIR``: the same as ``tinyllm explore --model DIR``."""
import sys

from ..cli import main

if __name__ == "__main__":
    sys.exit(main(["explore", *sys.argv[1:]]))
