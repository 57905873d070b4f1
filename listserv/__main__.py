"""``python -m listserv`` is the same as the ``listserv`` console script."""

from listserv.cli.main import main

raise SystemExit(main())
