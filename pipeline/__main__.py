"""``python -m pipeline run|search|bench``. The CLI is a composition root (it may store into the
database and S3), so it lives in ``services.cli``; the engine itself stays free of both."""
import sys

from services.cli import main

sys.exit(main())
