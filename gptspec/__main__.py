"""``python -m gptspec`` runs the command line."""

import sys

from gptspec.cli import main

sys.exit(main())
