"""``python -m lstm_xp``: the ``lstm-xp`` command (lstm_xp.job.cli.main)."""

import sys

from lstm_xp.job.cli import main

if __name__ == "__main__":
    sys.exit(main())
