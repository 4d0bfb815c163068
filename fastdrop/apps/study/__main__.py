"""``python -m fastdrop.apps.study``: the study's command line (as ``fastdrop study``)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
