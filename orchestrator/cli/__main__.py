"""``python -m orchestrator.cli`` runs ``sdl``."""

import sys

from orchestrator.cli.parser import main

sys.exit(main())
