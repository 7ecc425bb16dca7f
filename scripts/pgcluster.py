"""A throwaway PostgreSQL cluster from the installed server binaries, for tests and benchmarks.

    python scripts/pgcluster.py start DIR [--port N]   # prints DATABASE_URL=...
    python scripts/pgcluster.py stop DIR

PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user.
Durability is switched off (fsync, full_page_writes): the cluster lives for one test run.
"""

import argparse
import glob
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path


def bindir() -> Path:
    found = shutil.which("pg_config")
    if found:
        out = subprocess.run([found, "--bindir"], capture_output=True, text=True).stdout.strip()
        if out and (Path(out) / "initdb").exists():
            return Path(out)
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if not candidates:
        sys.exit("PostgreSQL server binaries not found (apt-get install postgresql).")
    return Path(candidates[0]).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_as_owner(cmd: list[str]) -> None:
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def start(directory: Path, port: int | None) -> str:
    directory = directory.resolve()
    data = directory / "data"
    directory.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    port = port or free_port()
    bins = bindir()
    if not (data / "PG_VERSION").exists():
        run_as_owner(
            [
                str(bins / "initdb"),
                "-D",
                str(data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
                "--locale=C",
            ]
        )
    options = (
        f"-p {port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200 "
        "-c shared_buffers=256MB -c work_mem=16MB -c maintenance_work_mem=256MB"
    )
    run_as_owner(
        [
            str(bins / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(directory / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        ]
    )
    (directory / "port").write_text(str(port))
    return f"postgres://postgres@127.0.0.1:{port}/backoffice"


def stop(directory: Path) -> None:
    data = directory.resolve() / "data"
    if (data / "postmaster.pid").exists():
        run_as_owner([str(bindir() / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["start", "stop"])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--port", type=int)
    args = parser.parse_args()
    if args.command == "start":
        print(f"DATABASE_URL={start(args.directory, args.port)}")
    else:
        stop(args.directory)


if __name__ == "__main__":
    main()
