"""Settings validation: every problem names the connection and the key; no password leaks."""

from __future__ import annotations

from typing import Any

import pytest

from redis_conn import ConfigurationError
from redis_conn.config import EMBEDDED_DEFAULT, parse, validate


def messages(settings: Any) -> list[str]:
    return [str(p) for p in validate(settings)]


def ids(settings: Any) -> list[str]:
    return [p.id for p in validate(settings)]


def test_the_contract_example_is_valid_and_normalised() -> None:
    specs = parse(
        {
            "default": {"URL": "redis://127.0.0.1:6379/0"},
            "users": {
                "URL": "redis://:s3cret@10.0.0.5:6380/1",
                "MAX_CONNECTIONS": 20,
                "POOL_TIMEOUT": 2,
            },
            "messages": {"URL": "unix:///run/redis.sock?db=2", "BLOCKING": False},
            "sessions": {"ALIAS": "default"},
            "cache": {"URL": "redis://127.0.0.1:7000", "CLUSTER": True, "READ_FROM_REPLICAS": True},
            "ha": {"SENTINELS": [("127.0.0.1", 26379)], "SERVICE_NAME": "mymaster"},
            "dev": {"FAKE": True},
        }
    )
    assert [s.kind for s in specs.values()] == [
        "standalone",
        "standalone",
        "unix",
        "standalone",
        "cluster",
        "sentinel",
        "fake",
    ]
    users = specs["users"]
    assert (users.max_connections, users.pool_timeout, users.blocking) == (20, 2.0, True)
    assert users.target == "redis://:***@10.0.0.5:6380/1"
    assert "s3cret" not in repr(users)
    default = specs["default"]
    assert (
        default.max_connections,
        default.pool_timeout,
        default.socket_timeout,
        default.socket_connect_timeout,
        default.health_check_interval,
        default.retry,
    ) == (50, 5.0, 5.0, 2.0, 30, 3)
    assert specs["sessions"].alias_of == "default"
    assert specs["sessions"].root == "default"
    assert specs["sessions"].url == default.url
    assert specs["ha"].target == "redis+sentinel://127.0.0.1:26379/mymaster"
    assert specs["messages"].blocking is False


def test_embedded_default_is_one_fake_connection() -> None:
    assert parse(EMBEDDED_DEFAULT)["default"].kind == "fake"


def test_unknown_key_suggests_the_closest() -> None:
    assert messages({"users": {"URL": "redis://h", "MAX_CONNECTION": 5}}) == [
        "Redis connection 'users' has an unknown key 'MAX_CONNECTION'. "
        "HINT: Did you mean MAX_CONNECTIONS?"
    ]
    assert ids({"users": {"URL": "redis://h", "max_connections": 5}}) == ["E002"]


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("MAX_CONNECTIONS", "20", "a whole number >= 1"),
        ("MAX_CONNECTIONS", 0, "a whole number >= 1"),
        ("MAX_CONNECTIONS", True, "a whole number >= 1"),
        ("BLOCKING", "yes", "True or False"),
        ("POOL_TIMEOUT", -1, "a number of seconds >= 0 and <= 31536000"),
        ("POOL_TIMEOUT", None, "a number of seconds >= 0 and <= 31536000"),
        ("SOCKET_TIMEOUT", "5", "a number of seconds > 0 and <= 31536000 or None"),
        ("RETRY", 1.5, "a whole number >= 0"),
    ],
)
def test_bad_types_name_connection_key_and_expectation(key: str, value: Any, expected: str) -> None:
    problems = validate({"users": {"URL": "redis://h", key: value}})
    assert [(p.id, p.connection, p.key) for p in problems] == [("E003", "users", key)]
    assert problems[0].message == (
        f"Redis connection 'users' has {key}={value!r} ({type(value).__name__}); "
        f"expected {expected}."
    )


def test_bad_scheme_is_reported_without_the_password() -> None:
    (problem,) = validate({"users": {"URL": "http://:hunter2@h:1/0"}})
    assert problem.id == "E005"
    assert problem.message == (
        "Redis connection 'users' has URL 'http://:***@h:1/0' with scheme 'http'."
    )
    assert "hunter2" not in str(problem)


@pytest.mark.parametrize(
    "url",
    [
        "://:hunter2@127.0.0.1",
        "//:hunter2@127.0.0.1",
        "redis:/:hunter2@h",
        ":hunter2@h",
        "://://:hunter2@127.0.0.1?password=hunter2",
        "redis://:hun?ter2@h:1/0",
        "redis://:hun/ter2@h:1/0",
    ],
)
def test_a_url_without_a_scheme_is_reported_without_the_password(url: str) -> None:
    # Found by the settings fuzzer: '://:password@host' was echoed as is.
    problems = validate({"users": {"URL": url}})
    assert problems
    assert all("hunter2" not in str(p) and "ter2" not in str(p) for p in problems), problems


def test_unparseable_url_is_reported_without_the_password() -> None:
    (problem,) = validate({"users": {"URL": "redis://:hunter2@h:1/0?socket_timeout=soon"}})
    assert problem.id == "E005"
    assert problem.connection == "users"
    assert "cannot parse" in problem.message
    assert "hunter2" not in str(problem)


def test_url_of_the_wrong_type_does_not_echo_it() -> None:
    (problem,) = validate({"users": {"URL": b"redis://:hunter2@h"}})
    assert problem.message.startswith("Redis connection 'users' has URL=*** (bytes)")


def test_missing_url() -> None:
    assert messages({"users": {"MAX_CONNECTIONS": 3}}) == [
        "Redis connection 'users' has no URL. HINT: Add URL (redis://, rediss:// or unix://), "
        "or use ALIAS, FAKE or SENTINELS."
    ]


def test_alias_to_missing_name_lists_the_configured_ones() -> None:
    assert messages({"default": {"FAKE": True}, "s": {"ALIAS": "defualt"}}) == [
        "Redis connection 's' has ALIAS 'defualt', which is not a configured connection. "
        "HINT: Configured connections: 'default'."
    ]


def test_alias_loop_is_reported_once() -> None:
    problems = validate({"a": {"ALIAS": "b"}, "b": {"ALIAS": "c"}, "c": {"ALIAS": "a"}})
    assert [p.id for p in problems] == ["E007"]
    assert (
        problems[0].message == "Redis connection 'a' has an ALIAS loop: 'a' -> 'b' -> 'c' -> 'a'."
    )


def test_alias_to_an_alias_resolves_to_the_owner() -> None:
    specs = parse({"a": {"FAKE": True}, "b": {"ALIAS": "a"}, "c": {"ALIAS": "b"}})
    assert specs["c"].root == "a"


def test_alias_allows_no_other_key() -> None:
    assert ids({"a": {"FAKE": True}, "b": {"ALIAS": "a", "MAX_CONNECTIONS": 3}}) == ["E008"]


def test_cluster_with_sentinels() -> None:
    problems = validate(
        {"x": {"URL": "redis://h", "CLUSTER": True, "SENTINELS": [("h", 1)], "SERVICE_NAME": "m"}}
    )
    assert ("E009", "SENTINELS") in [(p.id, p.key) for p in problems]
    assert any("both CLUSTER and SENTINELS" in p.message for p in problems)


@pytest.mark.parametrize(
    ("entry", "key"),
    [
        ({"URL": "redis://h", "READ_FROM_REPLICAS": True}, "READ_FROM_REPLICAS"),
        ({"SENTINELS": [("h", 1)]}, "SERVICE_NAME"),
        ({"URL": "redis://h", "SERVICE_NAME": "m"}, "SERVICE_NAME"),
        ({"SENTINELS": [("h", 1)], "SERVICE_NAME": "m", "URL": "redis://h"}, "URL"),
        ({"FAKE": True, "URL": "redis://h"}, "URL"),
        ({"URL": "unix:///tmp/r.sock", "CLUSTER": True}, "URL"),
    ],
)
def test_conflicting_keys(entry: dict[str, Any], key: str) -> None:
    problems = validate({"x": entry})
    assert [(p.id, p.connection, p.key) for p in problems] == [("E009", "x", key)]


def test_sentinels_shape() -> None:
    assert ids({"x": {"SENTINELS": ["h:26379"], "SERVICE_NAME": "m"}}) == ["E003"]


def test_options_that_fight_a_setting_are_rejected() -> None:
    assert messages({"x": {"URL": "redis://h", "OPTIONS": {"max_connections": 3}}}) == [
        "Redis connection 'x' has OPTIONS['max_connections'], which the MAX_CONNECTIONS "
        "setting controls. HINT: Use MAX_CONNECTIONS instead."
    ]


def test_options_redis_py_would_reject_are_caught_at_startup() -> None:
    (problem,) = validate({"x": {"URL": "redis://h", "OPTIONS": {"decode_response": True}}})
    assert problem.id == "E010"
    assert problem.key == "OPTIONS.decode_response"
    assert problem.hint == "Did you mean 'decode_responses'?"


def test_not_a_mapping() -> None:
    assert ids(["default"]) == ["E001"]
    assert ids({"default": "redis://h"}) == ["E001"]
    assert ids({"": {"FAKE": True}}) == ["E001"]


def test_parse_raises_every_problem_at_once() -> None:
    with pytest.raises(ConfigurationError) as info:
        parse({"a": {"URL": "ftp://h"}, "b": {"ALIAS": "zz"}})
    assert len(info.value.problems) == 2
    assert "'a'" in str(info.value) and "'b'" in str(info.value)


def test_every_problem_names_the_connection() -> None:
    bad = {
        "a": {"URL": 5},
        "b": {"URL": "redis://h", "BLOCKING": 1},
        "c": {"ALIAS": "a", "URL": "redis://h"},
        "d": {"OPTIONS": {"host": "h"}, "URL": "redis://h"},
    }
    for problem in validate(bad):
        assert problem.connection is not None
        assert f"Redis connection {problem.connection!r}" in problem.message
        assert problem.message.endswith(".")


def test_a_bad_options_value_is_not_echoed() -> None:
    (problem,) = validate({"x": {"URL": "redis://h", "OPTIONS": {"password": "hunter2", 1: 2}}})
    assert problem.message == (
        "Redis connection 'x' has OPTIONS=*** (dict); expected a dict of keyword arguments."
    )
