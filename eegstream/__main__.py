"""Allow ``python -m eegstream``."""

from eegstream.cli import main

raise SystemExit(main())
