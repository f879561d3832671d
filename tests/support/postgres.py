"""A throwaway real PostgreSQL cluster on a free loopback port."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.processes import free_port
from tests.support.system import require_binary

PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"


@dataclass(frozen=True)
class PostgresServer:
    port: int
    data_dir: Path

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"


def _pg_bin() -> Path:
    search = sorted(glob.glob(PG_BIN_GLOB))
    return Path(require_binary("initdb", ["postgresql"], search=search)).parent


def _as_postgres_user(argv: list[str]) -> list[str]:
    # The server refuses to run as root; as root we drop to the 'postgres' account the package creates.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    bindir = _pg_bin()
    root = Path(tempfile.mkdtemp(prefix="jf-pg-"))
    data, sockets = root / "data", root / "sock"
    sockets.mkdir()
    if os.geteuid() == 0:
        uid = pwd.getpwnam("postgres").pw_uid
        for path in (root, sockets):
            os.chown(path, uid, -1)
    port = free_port()
    run = lambda *args: subprocess.run(_as_postgres_user([str(bindir / args[0]), *args[1:]]),  # noqa: E731
                                       check=True, capture_output=True, text=True)
    try:
        run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        run("pg_ctl", "-D", str(data), "-l", str(root / "server.log"), "-w", "-t", "30", "start", "-o",
            f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200")
        yield PostgresServer(port=port, data_dir=data)
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(_as_postgres_user([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                                              "-w", "stop"]), capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def create_database(server: PostgresServer, name: str) -> str:
    import psycopg

    with psycopg.connect(f"host=127.0.0.1 port={server.port} user=postgres dbname=postgres",
                         autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server.url(name)
