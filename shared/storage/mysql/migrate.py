"""`python -m shared.storage.mysql.migrate`: bring the MySQL database named by the MYSQL_* settings to
the latest schema. Run at deploy time (never by a request); safe to run again and concurrently."""

from __future__ import annotations

import logging
import sys

from shared.errors import StorageUnavailable
from shared.settings import get_settings
from shared.storage.mysql.connection import Target
from shared.storage.mysql.migrations import migrate


def main() -> int:
    """Apply the missing migrations; exit status 0 when the schema is current."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    settings = get_settings()
    problems = [name for name in settings.problems if name.startswith("MYSQL_")]
    if problems:
        print(f"migrate: missing or unsafe settings: {', '.join(problems)}", file=sys.stderr)
        return 2
    target = Target.from_settings(settings)
    try:
        run = migrate(target)
    except (StorageUnavailable, ValueError) as exc:
        print(f"migrate: {target!r}: failed: {exc}", file=sys.stderr)
        return 1
    applied = ", ".join(map(str, run.applied)) or "none"
    print(f"migrate: {target!r}: schema version {run.version} (applied: {applied})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
