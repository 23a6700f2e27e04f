"""`python -m server`: the same as `rmr serve` (server/host/cli.py)."""

import sys

from server.host.cli import main

if __name__ == "__main__":
    sys.exit(main())
