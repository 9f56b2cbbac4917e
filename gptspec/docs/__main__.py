"""``python -m gptspec.docs [--check]``: write (or check) the generated files in docs/."""

import sys

from gptspec.docs.repo import main

sys.exit(main())
