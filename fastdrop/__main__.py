"""`python -m fastdrop`: the command line of fastdrop.apps.cli."""
import sys

from fastdrop.apps.cli import main

if __name__ == "__main__":
    sys.exit(main())
