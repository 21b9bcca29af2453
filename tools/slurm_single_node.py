#!/usr/bin/env python3
"""A throwaway single-node SLURM on this machine, to run the workflow through profiles/slurm.

    sudo tools/slurm_single_node.py start [--dir DIR] [--partition cpu --partition gpu] [--install]
    eval "$(tools/slurm_single_node.py env)"      # SLURM_CONF for sbatch/squeue/scontrol
    tools/slurm_single_node.py status             # exit 0 when the node answers and is usable
    tools/slurm_single_node.py stop               # cancel jobs, stop every daemon it started

Debian's ``slurm-wlm`` and ``munge`` (``--install`` apt-installs them when missing). Everything
lives in DIR (default ``$TMPDIR/llm-influence-slurm``): a private munge key and socket,
``slurm.conf`` with this host's name, CPUs and memory (``slurmd -C``) and one partition per
``--partition`` (default: the profile's ``cpu`` and ``gpu``), state, spool, logs, and
``jobcomp.txt`` -- one line per finished job (there is no accounting database, so ``sacct``
answers "accounting storage is disabled"; run Snakemake with ``--slurm-status-command squeue``).
Settings that work in a container: proctrack/linuxproc, task/none, no cgroups. Nothing outside
DIR is written, system daemons are not touched, and the ports are free ones picked at start.

Needs root (slurmd starts jobs as their users) and a Debian-like system with apt; otherwise it
says why and exits with status 3, so tests skip rather than fail.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

UNSUPPORTED = 3  # exit status: this machine cannot run it (not root, no apt, packages missing)
PACKAGES = ("slurm-wlm", "munge")
DAEMONS = {
    "munged": "/usr/sbin/munged",
    "slurmctld": "/usr/sbin/slurmctld",
    "slurmd": "/usr/sbin/slurmd",
}
CLIENTS = ("sbatch", "squeue", "scontrol", "sinfo", "scancel", "srun")
# set in the daemons' environment (and so in slurmstepd's): `stop` finds every process it started
MARKER = "LLM_INFLUENCE_SLURM_DIR"
DEFAULT_DIR = Path(tempfile.gettempdir()) / "llm-influence-slurm"
# Where sbatch/srun look when SLURM_CONF is unset. Inside a job the executor's nested `srun` runs
# with every SLURM_* variable removed (snakemake-executor-plugin-slurm-jobstep), so, as on a real
# cluster, the configuration must be found here: `start` links it (only where no SLURM
# configuration exists) and `stop` removes the link.
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")
HEADER = "# written by tools/slurm_single_node.py: a private single-node SLURM"


class Unsupported(RuntimeError):
    """This machine cannot run a private SLURM (the message says why)."""


def _missing_programs() -> list[str]:
    missing = [name for name, path in DAEMONS.items() if not os.access(path, os.X_OK)]
    return missing + [name for name in CLIENTS if shutil.which(name) is None]


def check(install: bool = False) -> None:
    """Raise Unsupported unless this process can start SLURM here (installing it if asked)."""
    if sys.platform != "linux":
        raise Unsupported(f"needs Linux, this is {sys.platform}")
    if os.geteuid() != 0:
        raise Unsupported("needs root (slurmd runs jobs as their users); run it with sudo")
    if SYSTEM_CONF.exists() and not SYSTEM_CONF.read_text().startswith(HEADER):
        raise Unsupported(f"{SYSTEM_CONF} exists: this machine has its own SLURM, use that")
    missing = _missing_programs()
    if not missing:
        return
    if shutil.which("apt-get") is None:
        raise Unsupported(f"{', '.join(missing)} not installed and no apt-get to install them")
    if not install:
        raise Unsupported(
            f"{', '.join(missing)} not installed: rerun with --install "
            f"(apt-get install {' '.join(PACKAGES)})"
        )
    apt_install()
    missing = _missing_programs()
    if missing:
        raise Unsupported(f"apt-get install {' '.join(PACKAGES)} did not provide {missing}")


def apt_install() -> float:
    """apt-get install slurm-wlm and munge (without recommends); returns the seconds it took."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    start = time.monotonic()
    for cmd in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES],
    ):
        print("+", " ".join(cmd), file=sys.stderr)
        subprocess.run(cmd, check=True, env=env, stdout=sys.stderr)
    seconds = time.monotonic() - start
    print(f"installed {' '.join(PACKAGES)} in {seconds:.0f} s", file=sys.stderr)
    return seconds


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_line() -> tuple[str, str]:
    """(host name, `NodeName=... CPUs=... RealMemory=...`) as slurmd itself measures them."""
    out = subprocess.run(
        [DAEMONS["slurmd"], "-C"], check=True, capture_output=True, text=True
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("NodeName="))
    return line.split()[0].removeprefix("NodeName="), line


def slurm_conf(root: Path, partitions: list[str]) -> str:
    """slurm.conf for one node (this host) with everything under ``root``."""
    host, node = _node_line()
    lines = [
        HEADER,
        "ClusterName=llminfluence",
        f"SlurmctldHost={host}(127.0.0.1)",
        f"SlurmctldPort={_free_port()}",
        f"SlurmdPort={_free_port()}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={root / 'munge' / 'munge.socket'}",
        f"StateSaveLocation={root / 'state'}",
        f"SlurmdSpoolDir={root / 'spool'}",
        f"SlurmctldPidFile={root / 'slurmctld.pid'}",
        f"SlurmdPidFile={root / 'slurmd.pid'}",
        f"SlurmctldLogFile={root / 'log' / 'slurmctld.log'}",
        f"SlurmdLogFile={root / 'log' / 'slurmd.log'}",
        "SlurmctldDebug=info",
        "SlurmdDebug=info",
        # containers: no cgroups, no affinity
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none",
        "MpiDefault=none",
        "SwitchType=switch/none",
        # no accounting database: sacct is disabled, squeue answers (jobs stay visible MinJobAge s)
        "AccountingStorageType=accounting_storage/none",
        "JobCompType=jobcomp/filetxt",
        f"JobCompLoc={root / 'jobcomp.txt'}",
        "MinJobAge=600",
        "SchedulerType=sched/backfill",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",  # memory is requested and checked, not reserved
        "ReturnToService=2",
        "SlurmdTimeout=60",
        f"{node} NodeAddr=127.0.0.1 State=UNKNOWN",
    ]
    for i, name in enumerate(partitions):
        default = "YES" if i == 0 else "NO"
        lines.append(
            f"PartitionName={name} Nodes={host} Default={default} MaxTime=INFINITE State=UP"
        )
    return "\n".join(lines) + "\n"


def env(root: Path) -> dict[str, str]:
    """What clients (sbatch, squeue, snakemake's SLURM executor) need to reach this cluster."""
    return {"SLURM_CONF": str(root / "slurm.conf")}


def _client(root: Path, *cmd: str, check: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(
        list(cmd), env={**os.environ, **env(root)}, capture_output=True, text=True, check=check
    )


def _pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def _wait(what: str, ready, timeout: float, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.2)
    tail = ""
    if log is not None and log.is_file():
        tail = "\n--- " + str(log) + "\n" + "\n".join(log.read_text().splitlines()[-20:])
    raise RuntimeError(f"{what} did not come up within {timeout:.0f} s{tail}")


def node_state(root: Path) -> str:
    """The node's state as sinfo reports it ('idle', 'mixed', 'down*', ...); '' when unreachable."""
    proc = _client(root, "sinfo", "--noheader", "--Node", "--format=%T")
    return proc.stdout.split()[0] if proc.returncode == 0 and proc.stdout.split() else ""


def start(
    root: Path = DEFAULT_DIR, partitions: list[str] | None = None, install: bool = False
) -> dict[str, str]:
    """Start munged, slurmctld and slurmd with a configuration in ``root``; return :func:`env`."""
    check(install)
    root = root.resolve()
    if _running(root):
        raise RuntimeError(f"a cluster from {root} is already running: `stop` it first")
    if root.exists() and any(root.iterdir()):
        conf = root / "slurm.conf"
        if not (conf.is_file() and conf.read_text().startswith(HEADER)):
            raise RuntimeError(f"{root} is not empty and not a directory this script made")
        shutil.rmtree(root)
    for sub in ("munge", "state", "spool", "log"):
        (root / sub).mkdir(parents=True, mode=0o700)
    root.chmod(0o755)  # munged checks the socket's directories: writable by root only
    key = root / "munge" / "munge.key"
    key.write_bytes(secrets.token_bytes(1024))
    key.chmod(0o400)
    conf = root / "slurm.conf"
    conf.write_text(slurm_conf(root, partitions or ["cpu", "gpu"]))
    _link_system_conf(conf)
    daemon_env = {**os.environ, **env(root), MARKER: str(root)}
    socket_path = root / "munge" / "munge.socket"
    try:
        subprocess.run(
            [
                DAEMONS["munged"],
                "--force",
                f"--socket={socket_path}",
                f"--key-file={key}",
                f"--pid-file={root / 'munge' / 'munged.pid'}",
                f"--log-file={root / 'log' / 'munged.log'}",
                f"--seed-file={root / 'munge' / 'munged.seed'}",
            ],
            check=True,
            env=daemon_env,
            capture_output=True,
            text=True,
        )
        _wait("munged", socket_path.exists, 10, root / "log" / "munged.log")
        for name in ("slurmctld", "slurmd"):
            subprocess.run(
                [DAEMONS[name], "-f", str(conf)],
                check=True,
                env=daemon_env,
                capture_output=True,
                text=True,
            )
        _wait(
            "slurmctld",
            lambda: _client(root, "scontrol", "ping").stdout.count("UP") > 0,
            30,
            root / "log" / "slurmctld.log",
        )
        _wait(
            "the node",
            lambda: node_state(root) in ("idle", "mixed", "allocated"),
            60,
            root / "log" / "slurmd.log",
        )
    except BaseException as err:
        stop(root)
        if isinstance(err, subprocess.CalledProcessError):
            raise RuntimeError(f"{err.cmd[0]} failed: {err.stderr or err.stdout}") from err
        raise
    return env(root)


def _link_system_conf(conf: Path) -> None:
    if SYSTEM_CONF.is_symlink() and not SYSTEM_CONF.exists():
        SYSTEM_CONF.unlink()  # left by a cluster whose directory is gone
    if SYSTEM_CONF.exists() or SYSTEM_CONF.is_symlink():
        raise Unsupported(
            f"{SYSTEM_CONF} exists ({SYSTEM_CONF.resolve()}): this machine has a SLURM "
            "configuration already; use that cluster, or stop the one that made it"
        )
    SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
    SYSTEM_CONF.symlink_to(conf)


def _unlink_system_conf(conf: Path) -> None:
    if SYSTEM_CONF.is_symlink() and Path(os.readlink(SYSTEM_CONF)) == conf:
        SYSTEM_CONF.unlink()


def processes(root: Path) -> list[int]:
    """Processes (pids) started by this cluster: the daemons and slurmstepd carry MARKER=root."""
    needle = f"{MARKER}={root}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if needle in (proc / "environ").read_bytes().split(b"\0"):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def _running(root: Path) -> bool:
    return bool(processes(root.resolve()))


def stop(root: Path = DEFAULT_DIR) -> None:
    """Cancel every job, stop slurmd, slurmctld and munged, and kill whatever they left."""
    root = root.resolve()
    if (root / "slurm.conf").is_file() and _pid(root / "slurmctld.pid"):
        _client(root, "scancel", "--full", "--quiet", f"--user={os.getuid()}")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            queue = _client(root, "squeue", "--noheader", "--states=all", "--format=%i %T")
            if queue.returncode != 0 or not any(
                s in queue.stdout for s in ("RUNNING", "COMPLETING", "PENDING", "CONFIGURING")
            ):
                break
            time.sleep(0.5)
    for pidfile in ("slurmd.pid", "slurmctld.pid", "munge/munged.pid"):
        pid = _pid(root / pidfile)
        if pid:
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while processes(root) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in processes(root):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _unlink_system_conf(root / "slurm.conf")


def status(root: Path = DEFAULT_DIR) -> tuple[bool, str]:
    """(usable, a line per daemon and the node's state)."""
    root = root.resolve()
    lines = []
    for name, pidfile in (
        ("munged", "munge/munged.pid"),
        ("slurmctld", "slurmctld.pid"),
        ("slurmd", "slurmd.pid"),
    ):
        pid = _pid(root / pidfile)
        lines.append(f"{name}: {'running, pid ' + str(pid) if pid else 'not running'}")
    state = node_state(root) if (root / "slurm.conf").is_file() else ""
    lines.append(f"node: {state or 'unreachable'}")
    usable = all("running" in x and "not" not in x for x in lines[:3]) and state in (
        "idle",
        "mixed",
        "allocated",
    )
    return usable, "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["start", "stop", "status", "env", "check"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"default {DEFAULT_DIR}")
    parser.add_argument(
        "--partition",
        action="append",
        help="partition name (repeat; the first is the default); default: cpu and gpu",
    )
    parser.add_argument(
        "--install", action="store_true", help=f"apt-get install {' '.join(PACKAGES)} if missing"
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            check(args.install)
            print("this machine can run a single-node SLURM")
        elif args.command == "start":
            for key, value in start(args.dir, args.partition, args.install).items():
                print(f"export {key}={value}")
            print(f"SLURM is up ({args.dir / 'slurm.conf'}); stop it with `stop`", file=sys.stderr)
        elif args.command == "env":
            for key, value in env(args.dir.resolve()).items():
                print(f"export {key}={value}")
        elif args.command == "stop":
            stop(args.dir)
        else:
            usable, text = status(args.dir)
            print(text)
            return 0 if usable else 1
    except Unsupported as err:
        print(f"slurm_single_node: cannot run here: {err}", file=sys.stderr)
        return UNSUPPORTED
    except RuntimeError as err:
        print(f"slurm_single_node: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
