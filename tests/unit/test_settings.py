"""One settings reader: every int, float and bool setting arrives typed by every route (environment variables,
command-line options, a Serve config's ``args``), and a value that cannot be read names itself."""

from __future__ import annotations

import typing

import pytest

from schema.config import ServerDefaults
from schema.errors import SettingsError
from schema.settings import Settings
from serve_app.deployment import settings_from_args

SAMPLES = {int: ("7", 7), float: ("0.25", 0.25), bool: ("false", False)}


def typed_fields(cls: type) -> list[tuple[str, type]]:
    return [(name, kind) for name, kind in typing.get_type_hints(cls).items() if kind in SAMPLES]


def test_settings_has_typed_fields_to_check():
    kinds = {kind for _, kind in typed_fields(Settings)}
    assert int in kinds and len(typed_fields(Settings)) >= 8


@pytest.mark.parametrize(("name", "kind"), typed_fields(Settings))
def test_a_setting_from_the_environment_is_typed(name: str, kind: type):
    text, value = SAMPLES[kind]
    got = getattr(Settings.from_env({f"KATO_{name.upper()}": text}), name)
    assert got == value and type(got) is kind


@pytest.mark.parametrize(("name", "kind"), typed_fields(Settings))
def test_a_setting_from_serve_args_is_typed(name: str, kind: type):
    text, value = SAMPLES[kind]
    got = getattr(settings_from_args({name: text}), name)
    assert got == value and type(got) is kind


def test_the_payload_limit_from_serve_args_is_an_int():
    """The bug this reader fixed: ``max_body_bytes`` given in a Serve config arrived as the string '1000'."""
    assert settings_from_args({"max_body_bytes": "1000"}).max_body_bytes == 1000
    assert Settings.from_env({}, max_body_bytes="1000").max_body_bytes == 1000


def test_options_win_over_the_environment_and_none_means_not_given():
    env = {"KATO_PORT": "9000", "KATO_SHARDS": "3"}
    settings = Settings.from_env(env, port=9100, shards=None)
    assert (settings.port, settings.shards) == (9100, 3)


@pytest.mark.parametrize(("source", "message"), [
    ({"KATO_SHARDS": "two"}, "environment variable KATO_SHARDS: shards must be an integer (got 'two')"),
    ({"KATO_PORT": "80.5"}, "environment variable KATO_PORT: port must be an integer (got '80.5')"),
])
def test_an_unreadable_environment_value_names_the_variable(source: dict[str, str], message: str):
    with pytest.raises(SettingsError) as info:
        Settings.from_env(source)
    assert str(info.value) == message


def test_an_unreadable_option_or_unknown_arg_is_refused():
    with pytest.raises(SettingsError, match="option: port must be an integer"):
        settings_from_args({"port": "http"})
    with pytest.raises(SettingsError, match="'no_such_setting' is not a setting"):
        settings_from_args({"no_such_setting": "1"})


@pytest.mark.parametrize(("name", "kind"), [(n, k) for n, k in typed_fields(ServerDefaults)
                                             if n in ("max_pattern_length", "persistence", "recall_threshold",
                                                      "max_predictions")])
def test_kato_server_defaults_from_the_environment_are_typed(name: str, kind: type):
    text = {"recall_threshold": "0.25", "persistence": "7", "max_predictions": "7", "max_pattern_length": "7"}[name]
    got = getattr(ServerDefaults.from_env({name.upper(): text}), name)
    assert got == SAMPLES[kind][1] and type(got) is kind


def test_kato_server_defaults_are_validated_like_a_session_config():
    with pytest.raises(SettingsError, match="recall_threshold"):
        ServerDefaults.from_env({"RECALL_THRESHOLD": "1.5"})
    with pytest.raises(SettingsError, match="RECALL_THRESHOLD: recall_threshold must be a number"):
        ServerDefaults.from_env({"RECALL_THRESHOLD": "high"})


def test_the_embedded_redis_binary_is_a_setting(monkeypatch: pytest.MonkeyPatch, tmp_path):
    from cluster.ops.embedded_redis import find_redis_server

    monkeypatch.setenv("KATO_REDIS_SERVER", str(tmp_path / "nope"))
    assert Settings.from_env().redis_server == str(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="nope"):
        find_redis_server()


def test_the_flush_settings_reach_the_shards_flush_policy():
    from actors.stored_shard import FlushPolicy

    policy = FlushPolicy(**Settings.from_env({"KATO_FLUSH_INTERVAL": "0.5", "KATO_MEMORY_RELEASE_SECONDS": "12"})
                         .flush_policy())
    assert (policy.interval, policy.max_rows, policy.release_seconds) == (0.5, 20_000, 12.0)
