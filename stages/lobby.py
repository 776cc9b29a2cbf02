"""Where the nodes of a distributed run meet before torchrun starts: node 0 listens at
train.distributed.rdzv_endpoint, every other node says who it is and what it would train on (a fingerprint of
its params, prepared data and code), and node 0 answers all of them at once, "go" or what is wrong. So a node
that never comes, a port another program holds, a host that does not resolve or a node started with other
params is one line on every node, not a silent wait nor a model nobody asked for. Plain sockets (one JSON line
each way); torch is not imported. When all agree, node 0 closes the port and torchrun takes it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

from stages.errors import UserError

PROGRESS_EVERY_S = 10.0  # how often a waiting node says so
CONNECT_RETRY_S = 0.5
ANSWER_S = 30.0  # how long node 0 waits for a joined node to read its answer


def flat(prefix: str, value) -> dict[str, object]:
    """Dotted keys to leaves: {"models.mlp.lr": 0.01, ...}."""
    if isinstance(value, dict):
        out: dict[str, object] = {}
        for key, item in value.items():
            out.update(flat(f"{prefix}.{key}" if prefix else str(key), item))
        return out
    return {prefix: list(value) if isinstance(value, tuple) else value}


def _digest(paths: list[Path], root: Path) -> str:
    digest = hashlib.sha1()
    for path in sorted(paths):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def fingerprint(train, spec, prepared: str | Path) -> dict:
    """What must be the same on every node: the params train reads (all of train but the endpoint, which
    each node may spell its own way, and models.<name>), the prepared data's bytes, the stages' code and
    torch's version."""
    params = flat("train", asdict(train)) | flat(f"models.{spec.name}", asdict(spec))
    params.pop("train.distributed.rdzv_endpoint", None)
    prepared = Path(prepared)
    code = Path(__file__).resolve().parent
    return {
        "params": params,
        "data": _digest([p for p in prepared.rglob("*") if p.is_file()], prepared) if prepared.is_dir() else "",
        "code": _digest(list(code.glob("*.py")), code) + "/" + metadata.version("torch"),
    }


def differences(prints: dict[int, dict]) -> str | None:
    """What differs between node 0's fingerprint and the others', as one clause, or None."""
    base, parts = prints[0], []
    for key in sorted(set().union(*(p["params"] for p in prints.values()))):
        values = {node: p["params"].get(key, "(missing)") for node, p in prints.items()}
        if any(value != values[0] for value in values.values()):
            parts.append(f"{key} is {', '.join(f'{values[n]!r} on node {n}' for n in sorted(values))}")
    for what, name in (("data", "the prepared data (data/prepared)"), ("code", "the code (stages/, torch)")):
        odd = [node for node, p in sorted(prints.items()) if p[what] != base[what]]
        if odd:
            parts.append(f"{name} of node {', '.join(map(str, odd))} differs from node 0's")
    return "; ".join(parts) or None


def _address(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    host = host.strip("[]")
    try:
        socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as err:
        reason = err.strerror if isinstance(err, socket.gaierror) else str(err)
        raise UserError(
            f"train.distributed.rdzv_endpoint {endpoint}: the host {host!r} does not resolve ({reason}); write "
            "node 0's name or IP address, one every node can reach"
        ) from None
    return host, int(port)


def _waiting(say: Callable[[str], None], started: float, timeout: int, what: Callable[[], str]):
    """A function to call while waiting: says `what()` every PROGRESS_EVERY_S (thrice in a shorter timeout);
    True once `timeout` passed."""
    said, every = [started], min(PROGRESS_EVERY_S, max(1.0, timeout / 3))

    def tick() -> bool:
        now = time.monotonic()
        if now - started >= timeout:
            return True
        if now - said[0] >= every:
            said[0] = now
            say(f"{what()} ({now - started:.0f} s of train.distributed.join_timeout {timeout} s)")
        return False

    return tick


def _send(connection: socket.socket, message: dict) -> None:
    connection.sendall(json.dumps(message).encode() + b"\n")


def _receive(connection: socket.socket, deadline: float) -> dict | None:
    data = b""
    while not data.endswith(b"\n"):
        connection.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            chunk = connection.recv(1 << 16)
        except (TimeoutError, OSError):
            return None
        if not chunk:
            return None
        data += chunk
    try:
        return json.loads(data)
    except ValueError:
        return None


def host_lobby(model: str, endpoint: str, nnodes: int, timeout: int, mine: dict, say) -> None:
    """Node 0: wait for nodes 1 .. nnodes-1, compare, answer every one; raise UserError when it cannot go."""
    _, port = _address(endpoint)
    try:
        if socket.has_dualstack_ipv6():  # IPv4 and IPv6 addresses of this machine alike, as torchrun's store
            server = socket.create_server(("", port), family=socket.AF_INET6, dualstack_ipv6=True, backlog=128)
        else:
            server = socket.create_server(("", port), backlog=128)
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            raise UserError(
                f"train.distributed.rdzv_endpoint {endpoint}: port {port} is in use by another program on this "
                "machine (node 0); stop it, or choose another port"
            ) from None
        raise UserError(
            f"train.distributed.rdzv_endpoint {endpoint}: cannot listen on port {port}: {err.strerror}"
        ) from None
    joined: dict[int, socket.socket] = {}
    prints = {0: mine}

    def missing() -> list[int]:
        return [node for node in range(1, nnodes) if node not in joined]

    started = time.monotonic()
    tick = _waiting(say, started, timeout, lambda: f"train@{model}: waiting for node(s) "
                    f"{', '.join(map(str, missing()))} to join at {endpoint}")  # fmt: skip
    verdict: str | None = None
    with server:
        server.settimeout(0.5)
        try:
            while missing():
                if tick():
                    verdict = (
                        f"train@{model}: node(s) {', '.join(map(str, missing()))} never joined at {endpoint} within "
                        f"train.distributed.join_timeout ({timeout} s); start `python -m stages.train {model} "
                        "--node-rank N` on each, or raise the timeout"
                    )
                    break
                try:
                    connection, _ = server.accept()
                except TimeoutError:
                    continue
                hello = _receive(connection, time.monotonic() + 10)
                node = hello.get("node") if isinstance(hello, dict) else None
                if not isinstance(node, int) or not 0 < node < nnodes or node in joined:
                    answer = f"node 0 at {endpoint} already has node {node}, or expects nodes 1 to {nnodes - 1}"
                    _send_quietly(connection, {"error": answer})
                    connection.close()
                    continue
                joined[node], prints[node] = connection, hello.get("fingerprint", {})
            if verdict is None:
                found = differences(prints)
                if found:
                    verdict = (
                        f"train@{model}: the nodes would not train the same model: {found}; give every node the "
                        "same commit, params.yaml and data (dvc pull), then run again"
                    )
            for connection in joined.values():
                _send_quietly(connection, {"error": verdict} if verdict else {"go": True})
            deadline = time.monotonic() + ANSWER_S
            for connection in joined.values():  # each node closes first: the port is free again for torchrun
                _receive(connection, deadline)
        finally:
            for connection in joined.values():
                connection.close()
    if verdict:
        raise UserError(verdict)


def _send_quietly(connection: socket.socket, message: dict) -> None:
    try:
        _send(connection, message)
    except OSError:
        pass  # that node is gone; it reports its own error


def join_lobby(model: str, endpoint: str, node: int, timeout: int, mine: dict, say) -> None:
    """Node `node` > 0: reach node 0 (retrying until the timeout), say who it is, wait for the answer."""
    host, port = _address(endpoint)
    started = time.monotonic()
    tick = _waiting(say, started, timeout, lambda: f"train@{model}: node {node} waiting for node 0 at {endpoint}")
    while True:
        try:
            connection = socket.create_connection((host, port), timeout=5)
            break
        except OSError as err:
            if tick():
                raise UserError(
                    f"train@{model}: node 0 never answered at {endpoint} within train.distributed.join_timeout "
                    f"({timeout} s; {err.strerror or err}); start `python -m stages.train {model}` there (or "
                    "dvc repro), check the endpoint and the firewall, or raise the timeout"
                ) from None
            time.sleep(CONNECT_RETRY_S)
    with connection:
        _send(connection, {"node": node, "fingerprint": mine})
        answer = _receive(connection, time.monotonic() + timeout + ANSWER_S)  # node 0 may wait for others
    if answer is None:
        raise UserError(f"train@{model}: node 0 at {endpoint} closed the connection without an answer; see its log")
    if "error" in answer:
        raise UserError(str(answer["error"]))


def meet(model: str, endpoint: str, node: int, nnodes: int, timeout: int, mine: dict) -> None:
    """Every node of a run of nnodes > 1 calls this before starting torchrun."""

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    if node == 0:
        host_lobby(model, endpoint, nnodes, timeout, mine, say)
    else:
        join_lobby(model, endpoint, node, timeout, mine, say)
