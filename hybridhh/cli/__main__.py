"""``python -m hybridhh.cli`` runs the command line."""

import sys

from hybridhh.cli import main

sys.exit(main())
