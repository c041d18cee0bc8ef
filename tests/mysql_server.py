"""The MariaDB of one test process (each pytest-xdist worker has its own): started on first use in a
temporary directory, migrated once, stopped when the process exits (and killed with it if it dies).

Where mariadbd is not installed the MySQL tests skip, saying why; under CI (`CI` set) they fail
instead: `make test` installs mariadb-server first, so CI never skips them.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest

from local.mariadb import MariaDB, find_mariadbd
from shared.settings import Settings

DATABASE = "wx_login_test"
MISSING = "mariadbd not installed (apt-get install mariadb-server; `make test` installs it when run as root)"

_server: MariaDB | None = None
_failure: str | None = None


def _shutdown(server: MariaDB, directory: str) -> None:
    server.stop()
    shutil.rmtree(directory, ignore_errors=True)


def server() -> MariaDB:
    """This process's server, started on first use; skips (fails under CI) when it cannot be had."""
    global _server, _failure
    if _server is None and _failure is None:
        if find_mariadbd() is None:
            _failure = MISSING
        else:
            directory = tempfile.mkdtemp(prefix="wx-login-mariadb-")
            candidate = MariaDB(Path(directory) / "data")
            try:
                candidate.start()
            except (OSError, RuntimeError) as exc:
                shutil.rmtree(directory, ignore_errors=True)
                _failure = f"mariadbd did not start: {exc}"
            else:
                atexit.register(_shutdown, candidate, directory)
                _server = candidate
    if _server is None:
        reason = _failure or MISSING
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    if _server.process is None or _server.process.poll() is not None:
        _server.start()  # a fault test stopped it and did not bring it back
    return _server


def mysql_settings(settings: Settings, database: str = DATABASE) -> Settings:
    """`settings` pointed at this process's server."""
    return replace(
        settings,
        storage="mysql",
        mysql_host="127.0.0.1",
        mysql_port=server().port,
        mysql_user="root",
        mysql_password="",
        mysql_database=database,
    )
