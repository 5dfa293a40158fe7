"""A sweep on a real two-node Ray cluster on this machine, as the book's cluster section (book/reference/sweeps.md) starts one.

A head and a second node, one CPU each, bound to the loopback addresses 127.0.0.2 and 127.0.0.3
(Ray rewrites 127.0.0.1 and localhost to the machine's network address), with token
authentication and a token of the test's own (`RAY_AUTH_TOKEN_PATH`; the user's
~/.ray/auth_token is not touched). `ser sweep --address` runs a two-fold grid on it: each trial
records its node, both nodes must have run one, and the results must equal a run without Ray.

Ray 2.60 binds its gRPC servers (GCS, raylets, workers, the driver) to every interface whatever
--node-ip-address says, so the test checks what it can: every connection of its processes is
on the loopback range, and none listens on the machine's own address. The nodes are stopped
by ending the `ray start --block` processes the test started, never with `ray stop`, which
ends every Ray instance on the machine.
"""

import ipaddress
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from ser_lib.analysis import runs
from sweeping import (RUN, SWEEP_TIMEOUT, assert_same_results, environment, kill_all, process_tree, reference_run,
                      running, ser_command, wait_for, write_grid)

pytestmark = pytest.mark.ray  # starts Ray clusters: `make test` runs these files on one worker

HEAD_IP, NODE_IP = "127.0.0.2", "127.0.0.3"
RAY = Path(sys.executable).with_name("ray")  # the ray CLI of this environment
NODE_START_TIMEOUT = 120


def free_port(ip: str) -> int:
    with socket.socket() as probe:
        try:
            probe.bind((ip, 0))
        except OSError:  # Linux routes all of 127/8 to the loopback interface, macOS only 127.0.0.1
            pytest.skip(f"{ip} is not a loopback address here (macOS: sudo ifconfig lo0 alias {ip} up)")
        return probe.getsockname()[1]


def start_node(temp_dir: Path, env: dict, ip: str, *args: str) -> subprocess.Popen:
    """`ray start --block` for one node in its own session; returns once the node runs."""
    temp_dir.mkdir(parents=True)
    log = temp_dir / "ray-start.log"
    with log.open("w") as out:
        node = subprocess.Popen([str(RAY), "start", "--block", f"--node-ip-address={ip}", "--num-cpus=1",
                                 "--num-gpus=0", f"--temp-dir={temp_dir}", "--disable-usage-stats", *args],
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def started():
        assert node.poll() is None, f"ray start on {ip} exited with {node.returncode}:\n{log.read_text()}"
        return "Ray runtime started" in log.read_text()

    wait_for(started, NODE_START_TIMEOUT, f"the Ray node on {ip}", poll=0.5)
    return node


def stop_node(node: subprocess.Popen) -> None:
    """SIGTERM to `ray start --block` ends the node's processes; whatever outlives it is killed."""
    tree = process_tree(node.pid)
    node.terminate()
    try:
        node.wait(60)
    except subprocess.TimeoutExpired:
        node.kill()
        node.wait(10)
    deadline = time.monotonic() + 20
    while running(tree) and time.monotonic() < deadline:
        time.sleep(0.5)
    kill_all(tree)


@pytest.fixture
def cluster():
    """A head on HEAD_IP and a second node on NODE_IP with token authentication."""
    address = f"{HEAD_IP}:{free_port(HEAD_IP)}"
    free_port(NODE_IP)  # skips where the second address is missing
    root = Path(tempfile.mkdtemp(prefix="ser-ray-", dir="/tmp"))  # Ray's socket paths must stay under 108 bytes
    token = root / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    env = environment(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token))
    nodes = []
    try:
        # --no-monitor: the autoscaler's monitor would serve metrics on 0.0.0.0:44217, and a
        # fixed set of nodes needs no autoscaler.
        nodes.append(start_node(root / "head", env, HEAD_IP, "--head", f"--port={address.split(':')[1]}",
                                "--include-dashboard=false", "--no-monitor"))
        nodes.append(start_node(root / "node", env, NODE_IP, f"--address={address}"))
        yield {"address": address, "env": env, "nodes": nodes}
    finally:
        for node in reversed(nodes):
            stop_node(node)
        shutil.rmtree(root, ignore_errors=True)


def sockets_of(processes) -> set[tuple]:
    """(process name, TCP status, local address, remote address) of every inet socket of `processes`."""
    seen = set()
    for process in running(processes):
        try:
            name = process.name()
            for conn in process.net_connections(kind="inet"):
                seen.add((name, conn.status, conn.laddr, conn.raddr or None))
        except Exception:  # the process ended meanwhile
            pass
    return seen


def on_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%")[0])
    address = getattr(address, "ipv4_mapped", None) or address
    return address.is_loopback


def off_loopback(sockets: set[tuple]) -> list[tuple]:
    """Sockets that carry traffic off the loopback range or listen on a non-loopback address
    (listening on every interface is Ray's own choice, noted in the module docstring)."""
    bad = []
    for name, status, local, remote in sockets:
        if remote is not None and not (on_loopback(local.ip) and on_loopback(remote.ip)):
            bad.append((name, status, local, remote))
        elif remote is None and not (on_loopback(local.ip) or ipaddress.ip_address(local.ip).is_unspecified):
            bad.append((name, status, local, remote))
    return bad


@pytest.mark.slow
def test_a_sweep_on_a_two_node_cluster_uses_both_nodes_and_equals_a_run_without_ray(cluster, tiny_corpus,
                                                                                     tmp_path):
    started = time.monotonic()
    grid = write_grid(tmp_path / "cluster.yaml", folds=2, cache_dir=tmp_path / "cache")
    out = tmp_path / "sweep"
    with (tmp_path / "driver.log").open("w") as log:
        driver = subprocess.Popen(ser_command("sweep", "--grid", grid, "--manifest", tiny_corpus, "--out", out,
                                              "--address", cluster["address"]),
                                  env=cluster["env"], stdout=log, stderr=subprocess.STDOUT)
    sockets = set()
    try:
        while driver.poll() is None:  # the sweep's traffic, sampled while it runs
            processes = [p for node in cluster["nodes"] + [driver] for p in process_tree(node.pid)]
            sockets |= sockets_of(processes)
            assert time.monotonic() - started < SWEEP_TIMEOUT, "the cluster sweep did not finish in time"
            time.sleep(1)
    finally:
        if driver.poll() is None:
            driver.kill()
    output = (tmp_path / "driver.log").read_text()
    assert driver.returncode == 0, output
    assert "Ray: 2 node(s), 2 CPUs" in output

    speakers = sorted(runs.fold_speaker(f) for f in runs.fold_dirs(out / RUN))
    assert len(speakers) == 2
    nodes = {s: runs.read_trial_info(runs.fold_dir(out / RUN, s))["node_ip"] for s in speakers}
    print(f"trials by node: {nodes}; sweep took {time.monotonic() - started:.0f} s")
    assert set(nodes.values()) == {HEAD_IP, NODE_IP}
    assert any(status == "ESTABLISHED" for _, status, _, _ in sockets), "no traffic was seen"
    assert off_loopback(sockets) == []

    assert_same_results(out / RUN, reference_run(grid, tiny_corpus, tmp_path / "reference"), speakers)
