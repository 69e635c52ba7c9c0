"""``python -m clearer_nni.export``: see :mod:`clearer_nni.experiment.export`."""

import sys

from .experiment.export import main

if __name__ == "__main__":
    sys.exit(main())
