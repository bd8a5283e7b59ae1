"""The ingress deployment's options follow the settings (``serve_app.deployment.ingress_application``)."""

from __future__ import annotations

import pytest

from schema.settings import Settings
from serve_app.deployment import ingress_application


@pytest.mark.parametrize("raw, expected", [(None, False), ("1", True), ("off", False)])
def test_the_access_log_follows_its_setting(raw: str | None, expected: bool):
    env = {} if raw is None else {"KATO_ACCESS_LOG": raw}
    deployment = ingress_application(Settings.from_env(env), "redis://127.0.0.1:1")._bound_deployment
    assert deployment.logging_config["enable_access_log"] is expected


def test_the_autoscaling_settings_reach_the_deployment():
    settings = Settings.from_env({"KATO_MIN_REPLICAS": "2", "KATO_MAX_REPLICAS": "3"})
    config = ingress_application(settings, "redis://127.0.0.1:1")._bound_deployment._deployment_config
    autoscaling = config.autoscaling_config
    assert autoscaling is not None and (autoscaling.min_replicas, autoscaling.max_replicas) == (2, 3)
