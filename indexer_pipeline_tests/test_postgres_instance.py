"""The same range materialization as test_assets, on a Dagster instance stored in a real PostgreSQL server.

This is what a multi-machine deployment changes: runs, events and check results go to a shared
Postgres instead of SQLite files on one disk. The server is private to the test (its own initdb
cluster on 127.0.0.1 and a free port), so no system service or shared database is touched.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import textwrap
from pathlib import Path

import dagster as dg
import pytest

from indexer_pipeline.corpus import discover_units

from .test_assets import materialize

PASSWORD = "indexer-test-pw"  # only ever protects a throwaway cluster bound to loopback
TIMEOUT_S = 60


def _pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not found:
        pytest.skip("PostgreSQL server binaries not found: apt-get install postgresql")
    return Path(found[-1]).parent  # the newest installed major version


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres():
    """A private PostgreSQL server on 127.0.0.1 with a `dagster` database; yields its port."""
    bindir = _pg_bin()
    # The server refuses to run as root, so as root everything runs as the `postgres` OS user. Its
    # directory lives directly in /tmp because pytest's tmp_path parents are private to root.
    as_server = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    root = Path(tempfile.mkdtemp(prefix="indexer-pg-"))
    data, pwfile, log = root / "data", root / "pwfile", root / "server.log"
    pwfile.write_text(PASSWORD + "\n")
    if as_server:
        shutil.chown(root, "postgres")
        shutil.chown(pwfile, "postgres")

    def run(*cmd: str | Path, check: bool = True) -> None:
        # pg_ctl's own -t wait is TIMEOUT_S; the outer bound only catches a hung binary.
        argv = as_server + [str(c) for c in cmd]
        subprocess.run(argv, cwd=root, check=check, capture_output=True, timeout=TIMEOUT_S + 15)

    port = _free_port()
    options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root}"
    try:
        # Password auth over TCP (as a remote Dagster would connect); trust only on the private socket.
        run(bindir / "initdb", "-D", data, "-U", "postgres", f"--pwfile={pwfile}", "--auth-host=scram-sha-256",
            "--auth-local=trust", "--no-sync")  # fmt: skip
        run(bindir / "pg_ctl", "-D", data, "-l", log, "-o", options, "-w", "-t", str(TIMEOUT_S), "start")
        run(bindir / "createdb", "-h", root, "-p", str(port), "-U", "postgres", "dagster")
        yield port
    except subprocess.CalledProcessError as e:
        server_log = log.read_text() if log.exists() else ""
        raise RuntimeError(f"{e.cmd}: {e.stderr.decode()}\n{server_log}") from e
    finally:
        # Always, even after a failed start (then it is a no-op); must not mask the original error.
        if (data / "postmaster.pid").exists():
            run(bindir / "pg_ctl", "-D", data, "-m", "fast", "-w", "-t", str(TIMEOUT_S), "stop", check=False)
        shutil.rmtree(root, ignore_errors=True)


def test_range_materialization_on_a_postgres_instance(postgres, corpus_env, tmp_path):
    import psycopg2

    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        "storage:\n"
        "  postgres:\n"
        "    postgres_db:\n"
        "      hostname: 127.0.0.1\n"
        f"      port: {postgres}\n"
        "      username: postgres\n"
        f"      password: {PASSWORD}\n"
        "      db_name: dagster\n"
        # SQLAlchemy 2.1 maps plain `postgresql://` to psycopg 3; dagster-postgres ships psycopg2.
        "      scheme: postgresql+psycopg2\n"
    )
    keys = [u.key for u in discover_units(corpus_env.corpus_dirs)]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for storage in (instance.run_storage, instance.event_log_storage, instance.schedule_storage):
            assert "Postgres" in type(storage).__name__, type(storage)
        instance.add_dynamic_partitions("source_units", keys)
        result = materialize(instance, keys)
        assert result.success
        assert instance.get_dynamic_partitions("source_units") == keys
        assert [r.dagster_run.run_id for r in instance.get_run_records()] == [result.run_id]

        evaluations = [
            e for e in result.get_asset_check_evaluations() if e.asset_key.path == ["qdrant_collection"]
        ]
        assert {e.check_name for e in evaluations} >= {"points_match_chunks", "vectors_valid", "success_rate"}
        assert all(e.passed for e in evaluations), {e.check_name: e.description for e in evaluations}

    # Read back with a plain client: the rows are in the server, not in a cache of the instance.
    dsn = (
        f"host=127.0.0.1 port={postgres} user=postgres password={PASSWORD} dbname=dagster connect_timeout=10"
    )
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM runs WHERE run_id = %s", (result.run_id,))
        assert cur.fetchone()[0] == 1
        cur.execute("SELECT count(*) FROM asset_check_executions WHERE run_id = %s", (result.run_id,))
        assert cur.fetchone()[0] >= len(evaluations)
    conn.close()


def test_the_readmes_cluster_dagster_yaml_loads(postgres, tmp_path, monkeypatch):
    """The README's dagster.yaml for runs in containers is valid as written: PostgreSQL storage (pointed
    at the test's server) and Dagster's own Docker run launcher, with the settings it passes on."""
    from dagster_docker import DockerRunLauncher

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    block = next(b for b in readme.split("```yaml\n")[1:] if "DockerRunLauncher" in b).split("```")[0]
    block = block.replace("hostname: db.internal", "hostname: 127.0.0.1").replace(
        "port: 5432", f"port: {postgres}"
    )
    block = block.replace("username: dagster", "username: postgres")
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", PASSWORD)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(textwrap.dedent(block))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert "Postgres" in type(instance.run_storage).__name__
        launcher = instance.run_launcher
        assert isinstance(launcher, DockerRunLauncher)
        assert {"OPENAI_API_KEY", "QDRANT_URL", "INDEXER_DATA_DIR"} <= set(launcher.env_vars)
        assert launcher.container_kwargs["volumes"]
        instance.get_runs()  # the storage answers: the password came from the environment
