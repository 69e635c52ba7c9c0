"""``python -m clearer_nni.report``: see :mod:`clearer_nni.experiment.report`."""

import sys

from .experiment.report import main

if __name__ == "__main__":
    sys.exit(main())
