"""``kato-cluster up --join``: the address it takes and the ``ray start`` it runs."""

from __future__ import annotations

import socket

import pytest
from typer.testing import CliRunner

from cluster.ops.cli import app
from cluster.ops.join import check_reachable, join_command, parse_address
from schema.errors import LauncherError


def test_an_address_is_host_and_port():
    assert parse_address("10.0.0.5:6379") == ("10.0.0.5", 6379)
    assert parse_address(" head.internal:6380 ") == ("head.internal", 6380)
    assert parse_address("[fd00::5]:6379") == ("fd00::5", 6379)


@pytest.mark.parametrize("address", ["10.0.0.5", ":6379", "head:", "head:port", "head:0", "head:70000", "a b:1"])
def test_a_malformed_address_is_refused_with_an_example(address):
    with pytest.raises(LauncherError, match=r"HOST:PORT \(for example 10\.0\.0\.5:6379\)"):
        parse_address(address)


def test_joining_runs_ray_start_blocking_and_from_loopback_for_a_loopback_head():
    remote = join_command("10.0.0.5:6379")
    assert remote[0].endswith("/ray") and remote[1:3] == ["start", "--address=10.0.0.5:6379"]
    assert "--block" in remote and not any(arg.startswith("--node-ip-address") for arg in remote)
    assert "--node-ip-address=127.0.0.1" in join_command("127.0.0.1:6379")
    assert "--node-ip-address=127.0.0.1" in join_command("localhost:6379")


def test_the_cli_refuses_a_bad_address_and_options_that_belong_to_the_service(tmp_path):
    bad = CliRunner().invoke(app, ["up", "--join", "nowhere", "--data-dir", str(tmp_path)])
    assert bad.exit_code == 1 and "--join takes the Ray head's HOST:PORT" in bad.output
    mixed = CliRunner().invoke(app, ["up", "--join", "10.0.0.5:6379", "--shards", "4", "--data-dir", str(tmp_path)])
    assert mixed.exit_code == 2 and "--join takes no --port, --host or --shards" in mixed.output
    assert not list(tmp_path.iterdir())  # nothing started, nothing written


def test_a_head_that_does_not_answer_is_refused_at_once(tmp_path):
    with socket.socket() as probe:  # a port nothing listens on: bound, never listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        with pytest.raises(LauncherError, match=rf"no Ray head answers at 127\.0\.0\.1:{port}"):
            check_reachable(f"127.0.0.1:{port}")
        dead = CliRunner().invoke(app, ["up", "--join", f"127.0.0.1:{port}", "--detach", "--data-dir", str(tmp_path)])
    assert dead.exit_code == 1 and "no Ray head answers" in dead.output
    assert not (tmp_path / "kato.pid").exists()


def test_a_head_that_listens_is_reachable():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        check_reachable(f"127.0.0.1:{server.getsockname()[1]}")
