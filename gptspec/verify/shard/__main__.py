"""``python -m gptspec.verify.shard merge REPORT.xml … --out FILE`` (docs/ci.md).

A package's ``__main__`` rather than the module run as a script: ``gptspec.verify`` imports
``gptspec.verify.shard`` itself, so running that module as ``__main__`` would execute it a second
time (runpy warns of exactly that); this entry only calls the one imported copy."""

from gptspec.verify.shard import main

raise SystemExit(main())
