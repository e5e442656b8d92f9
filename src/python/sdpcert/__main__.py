"""``python -m sdpcert``: the same command line as the ``sdpcert`` script."""

from .cli import main

raise SystemExit(main())
