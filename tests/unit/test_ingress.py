"""The environment that selects how HTTP reaches the ingress replicas, and where HAProxy listens
(``cluster.ops.ingress``)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cluster.ops.ingress import (
    HAPROXY_BINARY_VAR,
    UNAVAILABLE_RESPONSE,
    HAProxyBinds,
    ingress_environment,
    is_loopback,
    listen_address,
    rewrite_haproxy_config,
    serve_http_host,
    write_haproxy_wrapper,
)
from cluster.ops.ports import PORT_RANGE


def test_haproxy_mode_keeps_every_file_and_port_of_its_own():
    env = ingress_environment("haproxy", "/tmp/kato-ingress-x")
    assert env["RAY_SERVE_ENABLE_HA_PROXY"] == "1"
    paths = [v for k, v in env.items() if k.endswith(("_LOC", "_PATH", "_BASE", "_FILE", "_TARGET"))]
    assert len(paths) == 7 and all(p.startswith("/tmp/kato-ingress-x") for p in paths)
    assert env[HAPROXY_BINARY_VAR] == "/tmp/kato-ingress-x/haproxy"
    assert env["RAY_SERVE_HAPROXY_LOG_TARGET"].startswith("/")  # a Unix path: no UDP socket on every interface
    ports = [int(v) for k, v in env.items() if k.endswith("_PORT")]
    assert len(ports) == 4 and len(set(ports)) == 4 and all(p in PORT_RANGE for p in ports)
    assert int(env["RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"]) >= 1


def test_proxy_mode_turns_haproxy_off():
    assert ingress_environment("proxy", "/unused") == {"RAY_SERVE_ENABLE_HA_PROXY": "0"}


def test_an_unknown_mode_says_which_are_known():
    with pytest.raises(ValueError, match="ingress must be one of haproxy, proxy; got 'nginx'"):
        ingress_environment("nginx", "/unused")


def test_serve_stays_on_loopback_behind_haproxy():
    assert serve_http_host("haproxy", "0.0.0.0") == "127.0.0.1"  # replicas, fallback proxy; HAProxy binds --host
    assert serve_http_host("proxy", "0.0.0.0") == "0.0.0.0"  # the proxy actor serves the API itself


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("127.1.2.3", True), ("::1", True),
                                            ("[::1]", True), ("localhost", True), ("0.0.0.0", False),
                                            ("::", False), ("192.0.2.2", False), ("example.org", False)])
def test_loopback_addresses(host, loopback):
    assert is_loopback(host) is loopback


def test_page_addresses_are_checked_and_written_for_haproxy():
    assert listen_address("", "x") == ""
    assert listen_address("127.0.0.1:8404", "x") == "127.0.0.1:8404"
    assert listen_address("[::1]:9101", "x") == "[::1]:9101"
    assert listen_address("0.0.0.0:8404", "x") == "0.0.0.0:8404"
    for bad in ("8404", ":8404", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "host:port"):
        with pytest.raises(ValueError, match="haproxy_stats must be host:port"):
            listen_address(bad, "haproxy_stats")


# What Serve's template (ray/serve/_private/haproxy_templates.py) renders, abridged.
SERVE_CONFIG = """global
    log /tmp/k/access-log.sock local0 info
    stats socket /tmp/k/admin.sock mode 666 level admin expose-fd listeners
defaults
    mode http
frontend prometheus
    bind :9101
    mode http
    http-request use-service prometheus-exporter if { path /metrics }
    no log
frontend http_frontend
    bind 127.0.0.1:8000
    # Health check endpoint
    acl healthcheck path -i /-/healthz
backend http-kato
    server SERVE_REPLICA_kato 127.0.0.1:30000 check
frontend grpc_frontend
    bind 127.0.0.1:9000 proto h2
listen stats
  bind *:8404
  stats enable
  stats uri /stats
  stats refresh 1s
"""


def binds_of(text: str) -> list[str]:
    section, out = "", []
    for line in text.splitlines():
        if line[:1] not in ("", " "):
            section = line
        elif line.split()[:1] == ["bind"]:
            out.append(f"{section}: {line.strip()}")
    return out


def test_the_pages_are_left_out_unless_asked_and_serves_binds_kept():
    text = rewrite_haproxy_config(SERVE_CONFIG, HAProxyBinds())
    assert binds_of(text) == ["frontend http_frontend: bind 127.0.0.1:8000",
                              "frontend grpc_frontend: bind 127.0.0.1:9000 proto h2"]
    assert "prometheus" not in text and "stats enable" not in text
    assert "backend http-kato\n    server SERVE_REPLICA_kato 127.0.0.1:30000 check\n" in text


def test_the_pages_and_the_api_bind_where_asked():
    binds = HAProxyBinds(api_host="0.0.0.0", stats="192.0.2.7:8404", metrics="[::1]:9101").checked()
    text = rewrite_haproxy_config(SERVE_CONFIG, binds)
    assert binds_of(text) == ["frontend prometheus: bind [::1]:9101",
                              "frontend http_frontend: bind 0.0.0.0:8000",
                              "frontend grpc_frontend: bind 0.0.0.0:9000 proto h2",
                              "listen stats: bind 192.0.2.7:8404"]
    assert rewrite_haproxy_config(text, binds) == text  # once is enough: a second pass changes nothing


def test_an_unknown_listener_beyond_loopback_stops_haproxy():
    with pytest.raises(ValueError, match="'listen dataplane' would listen on \\*:5555, beyond loopback"):
        rewrite_haproxy_config(SERVE_CONFIG + "listen dataplane\n  bind *:5555\n", HAProxyBinds())
    local = SERVE_CONFIG + "listen local\n  bind 127.0.0.1:5555\n  bind unix@/tmp/k/x.sock\n"
    assert rewrite_haproxy_config(local, HAProxyBinds()).endswith("bind 127.0.0.1:5555\n  bind unix@/tmp/k/x.sock\n")


def test_the_wrapper_edits_the_config_then_runs_the_real_binary_with_the_same_arguments(tmp_path, monkeypatch):
    fake = tmp_path / "real-haproxy"  # prints its arguments instead of serving
    fake.write_text("#!/bin/sh\necho \"$0 $*\"\n")
    fake.chmod(0o755)
    monkeypatch.setenv(HAPROXY_BINARY_VAR, str(fake))  # an operator's own binary is the one the wrapper runs
    wrapper = tmp_path / "ingress" / "haproxy"
    assert write_haproxy_wrapper(str(wrapper), HAProxyBinds(api_host="::", stats="127.0.0.1:8404")) == str(fake)
    assert os.access(wrapper, os.X_OK)
    config = tmp_path / "haproxy.cfg"
    config.write_text(SERVE_CONFIG)
    out = subprocess.run([str(wrapper), "-db", "-f", str(config), "-sf", "123"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"{fake} -db -f {config} -sf 123"
    assert binds_of(config.read_text()) == ["frontend http_frontend: bind [::]:8000",
                                            "frontend grpc_frontend: bind [::]:9000 proto h2",
                                            "listen stats: bind 127.0.0.1:8404"]


def test_the_wrapper_refuses_a_config_that_would_listen_beyond_loopback(tmp_path, monkeypatch):
    monkeypatch.setenv(HAPROXY_BINARY_VAR, "/bin/true")
    wrapper = tmp_path / "haproxy"
    write_haproxy_wrapper(str(wrapper), HAProxyBinds())
    config = tmp_path / "haproxy.cfg"
    config.write_text(SERVE_CONFIG + "listen other\n  bind :5555\n")
    out = subprocess.run([str(wrapper), "-f", str(config)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "would listen on :5555, beyond loopback" in out.stderr


def test_the_wrapper_never_runs_itself(tmp_path, monkeypatch):
    wrapper = tmp_path / "haproxy"
    monkeypatch.setenv(HAPROXY_BINARY_VAR, str(wrapper))  # as on a node, where the variable names the wrapper
    real = write_haproxy_wrapper(str(wrapper), HAProxyBinds())
    assert os.path.realpath(real) != os.path.realpath(wrapper) and os.access(real, os.X_OK)
    assert os.environ[HAPROXY_BINARY_VAR] == str(wrapper)


def test_the_node_command_writes_a_wrapper(tmp_path):
    wrapper = tmp_path / "kato-haproxy"
    out = subprocess.run([sys.executable, "-m", "cluster.ops.ingress", "haproxy-wrapper", str(wrapper)],
                         capture_output=True, text=True, timeout=60,
                         env={**os.environ, HAPROXY_BINARY_VAR: str(wrapper)})
    assert out.returncode == 0, out.stderr
    assert "statistics page off, Prometheus page off" in out.stdout and os.access(wrapper, os.X_OK)


def test_no_replica_to_take_a_request_is_a_503_with_retry_after_not_serves_500():
    config = ("defaults\n    mode http\n    errorfile 502 /x/500.http\n    errorfile 503 /x/500.http\n"
              "    errorfile 504 /x/500.http\n    errorfile 400 /x/400.http\n")
    text = rewrite_haproxy_config(config, HAProxyBinds(), "/x/kato-503.http")
    assert [line.split() for line in text.splitlines() if "errorfile" in line] == [
        ["errorfile", "502", "/x/kato-503.http"], ["errorfile", "503", "/x/kato-503.http"],
        ["errorfile", "504", "/x/kato-503.http"], ["errorfile", "400", "/x/400.http"]]
    head = UNAVAILABLE_RESPONSE.split("\r\n\r\n", 1)[0].split("\r\n")
    assert head[0] == "HTTP/1.1 503 Service Unavailable" and "Retry-After: 1" in head


def test_the_fallback_proxys_500_for_a_dead_replica_is_a_503():
    config = "backend default_backend\n    http-request return status 404\nbackend http-kato\n    log global\n"
    text = rewrite_haproxy_config(config, HAProxyBinds(), "/x/kato-503.http")
    backend = text.split("backend http-kato\n", 1)[1]
    assert "http-response set-status 503 if { status 500 } { srv_name -m beg SERVE_PROXY_ACTOR }" in backend
    assert "set-status" not in text.split("backend http-kato", 1)[0]
    assert rewrite_haproxy_config(text, HAProxyBinds(), "/x/kato-503.http") == text
