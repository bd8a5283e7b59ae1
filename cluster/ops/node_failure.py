"""How fast a Ray cluster of several nodes notices a lost node, so that its shards restart elsewhere.

Ray's GCS health-checks every raylet; by default (3 s period, 5 failures, 10 s timeout) a node that vanished is
declared dead after roughly 15–30 s, and only then are its actors restarted. We check every second and give up
after 5 missed checks: about 5–7 s from the loss to the restart, while a node busy for a few seconds (a long
garbage collection, a loaded VM) is not taken for dead. ``ray_config.yaml`` passes the same values to the
head's ``ray start --system-config`` (a test keeps the two equal).
"""

from __future__ import annotations

NODE_FAILURE_DETECTION: dict[str, int] = {
    "health_check_initial_delay_ms": 2000,
    "health_check_period_ms": 1000,
    "health_check_timeout_ms": 1000,
    "health_check_failure_threshold": 5,
}
