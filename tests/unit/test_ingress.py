"""The environment that selects how HTTP reaches the ingress replicas (``cluster.ops.ingress``)."""

from __future__ import annotations

import pytest

from cluster.ops.ingress import ingress_environment
from cluster.ops.ports import PORT_RANGE


def test_haproxy_mode_keeps_every_file_and_port_of_its_own():
    env = ingress_environment("haproxy", "/tmp/kato-ingress-x")
    assert env["RAY_SERVE_ENABLE_HA_PROXY"] == "1"
    paths = [v for k, v in env.items() if k.endswith(("_LOC", "_PATH", "_BASE", "_FILE"))]
    assert len(paths) == 5 and all(p.startswith("/tmp/kato-ingress-x") for p in paths)
    ports = [int(v) for k, v in env.items() if k.endswith("_PORT")]
    assert len(ports) == 4 and len(set(ports)) == 4 and all(p in PORT_RANGE for p in ports)
    assert int(env["RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"]) >= 1


def test_proxy_mode_turns_haproxy_off():
    assert ingress_environment("proxy", "/unused") == {"RAY_SERVE_ENABLE_HA_PROXY": "0"}


def test_an_unknown_mode_says_which_are_known():
    with pytest.raises(ValueError, match="ingress must be one of haproxy, proxy; got 'nginx'"):
        ingress_environment("nginx", "/unused")
