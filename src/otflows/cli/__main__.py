"""``python -m otflows.cli …``: the `otflows` command without the console script."""

import sys

from otflows.cli.main import main

sys.exit(main())
