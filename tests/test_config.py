"""Settings validation: every problem names the connection and the key; no password leaks."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
from redis.connection import parse_url

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
        ("RETRY", 1.5, "a whole number >= 0 and <= 20"),
        ("RETRY", 10**12, "a whole number >= 0 and <= 20"),
        ("RETRY", -1, "a whole number >= 0 and <= 20"),
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


# -- what redis-py would refuse at the first command, misread, or silently replace -----------
# Each of these was accepted by the configuration (or crashed it with a raw ValueError) and
# then failed at the first command, or silently connected somewhere else.

S = "redis://127.0.0.1:6390"


class Provider:
    """A credential provider (redis-py only checks that it is not None beside a password)."""

    def __repr__(self) -> str:
        return "Provider()"


SENTINELS = [("127.0.0.1", 26379)]
REFUSED: list[tuple[str, dict[str, Any], str, str, str, str | None]] = [
    (
        "ipv6-unclosed",
        {"URL": "redis://[::1:6379/0"},
        "E005",
        "URL",
        "Redis connection 'x' has URL 'redis://[::1:6379/0' that redis-py cannot parse: "
        "Invalid IPv6 URL.",
        None,
    ),
    (
        "sentinel-kwargs-unknown",
        {"SENTINELS": SENTINELS, "SERVICE_NAME": "m", "SENTINEL_KWARGS": {"bogus": 1}},
        "E010",
        "SENTINEL_KWARGS.bogus",
        "Redis connection 'x' has SENTINEL_KWARGS['bogus'], which the connections to the "
        "sentinels do not accept.",
        None,
    ),
    (
        "sentinel-kwargs-host",
        {"SENTINELS": SENTINELS, "SERVICE_NAME": "m", "SENTINEL_KWARGS": {"host": "h"}},
        "E010",
        "SENTINEL_KWARGS.host",
        "Redis connection 'x' has SENTINEL_KWARGS['host'], which the SENTINELS setting controls.",
        "Use SENTINELS instead.",
    ),
    (
        "sentinel-kwargs-bad-value",
        {"SENTINELS": SENTINELS, "SERVICE_NAME": "m", "SENTINEL_KWARGS": {"protocol": 9}},
        "E010",
        "SENTINEL_KWARGS.protocol",
        "Redis connection 'x' has SENTINEL_KWARGS['protocol']=9; expected 2 or 3.",
        None,
    ),
    (
        "encoding-errors",
        {"URL": f"{S}/0", "OPTIONS": {"encoding_errors": "nope"}},
        "E010",
        "OPTIONS.encoding_errors",
        "Redis connection 'x' has OPTIONS['encoding_errors']='nope'; expected the name of a "
        "codecs error handler, such as 'strict' or 'replace'.",
        None,
    ),
    (
        "encoding",
        {"URL": f"{S}/0", "OPTIONS": {"encoding": "utf-9"}},
        "E010",
        "OPTIONS.encoding",
        "Redis connection 'x' has OPTIONS['encoding']='utf-9'; expected the name of a Python "
        "codec, such as 'utf-8'.",
        None,
    ),
    (
        "sentinel-port-too-big",
        {"SENTINELS": [("127.0.0.1", 99999)], "SERVICE_NAME": "m"},
        "E003",
        "SENTINELS",
        "Redis connection 'x' has SENTINELS[0]=('127.0.0.1', 99999); expected a non-empty "
        "host and a port from 1 to 65535.",
        None,
    ),
    (
        "sentinel-port-negative",
        {"SENTINELS": [("a", 26379), ("127.0.0.1", -1)], "SERVICE_NAME": "m"},
        "E003",
        "SENTINELS",
        "Redis connection 'x' has SENTINELS[1]=('127.0.0.1', -1); expected a non-empty "
        "host and a port from 1 to 65535.",
        None,
    ),
    (
        "sentinel-empty-host",
        {"SENTINELS": [("", 26379)], "SERVICE_NAME": "m"},
        "E003",
        "SENTINELS",
        "Redis connection 'x' has SENTINELS[0]=('', 26379); expected a non-empty host and a "
        "port from 1 to 65535.",
        None,
    ),
    (
        "ssl-cert-reqs-in-url",
        {"URL": "rediss://127.0.0.1:6390/0?ssl_cert_reqs=bogus"},
        "E010",
        "URL.ssl_cert_reqs",
        "Redis connection 'x' has URL['ssl_cert_reqs']=bogus, which redis-py refuses: "
        "Invalid SSL Certificate Requirements Flag: bogus.",
        None,
    ),
    (
        "ssl-cert-reqs-in-options",
        {"URL": "rediss://127.0.0.1:6390/0", "OPTIONS": {"ssl_cert_reqs": 7}},
        "E010",
        "OPTIONS.ssl_cert_reqs",
        "Redis connection 'x' has OPTIONS['ssl_cert_reqs']=7; expected 'none', 'optional', "
        "'required' or an ssl.VerifyMode.",
        None,
    ),
    (
        "protocol-9-in-url",
        {"URL": f"{S}/0?protocol=9"},
        "E010",
        "URL.protocol",
        "Redis connection 'x' has URL['protocol']=9; expected 2 or 3.",
        None,
    ),
    (
        "protocol-9-in-options",
        {"URL": f"{S}/0", "OPTIONS": {"protocol": 9}},
        "E010",
        "OPTIONS.protocol",
        "Redis connection 'x' has OPTIONS['protocol']=9; expected 2 or 3.",
        None,
    ),
    (
        "protocol-as-a-string",
        {"URL": f"{S}/0", "OPTIONS": {"protocol": " 3"}},
        "E010",
        "OPTIONS.protocol",
        "Redis connection 'x' has OPTIONS['protocol']=' 3'; expected 2 or 3.",
        None,
    ),
    (
        "password-in-user-part-and-query",
        {"URL": "redis://:hunter2@127.0.0.1:6390/0?password=hunter3"},
        "E009",
        "URL",
        "Redis connection 'x' has URL 'redis://:***@127.0.0.1:6390/0?password=***' with a "
        "password both in its user part and in ?password=; redis-py would use the user part's.",
        "Keep one: the user part, or ?password=.",
    ),
    (
        "unix-without-a-path",
        {"URL": "unix://"},
        "E005",
        "URL",
        "Redis connection 'x' has URL 'unix://' with no socket path.",
        "Write the path after unix://, e.g. unix:///run/redis.sock.",
    ),
    (
        "unix-with-two-slashes",
        {"URL": "unix://run/redis.sock?db=2"},
        "E005",
        "URL",
        "Redis connection 'x' has URL 'unix://run/redis.sock?db=2' with a host part ('run'), "
        "which redis-py ignores: the socket path would be '/redis.sock'.",
        "Write three slashes before an absolute path: unix:///run/redis.sock.",
    ),
    (
        "retry-huge",
        {"URL": f"{S}/0", "RETRY": 10**12},
        "E003",
        "RETRY",
        "Redis connection 'x' has RETRY=1000000000000 (int); expected a whole number >= 0 and "
        "<= 20.",
        None,
    ),
    (
        "db-in-options-and-url",
        {"URL": f"{S}/0", "OPTIONS": {"db": 7}},
        "E009",
        "OPTIONS.db",
        "Redis connection 'x' has OPTIONS['db']=7 and a URL naming db 0; redis-py would use "
        "the URL's db 0.",
        "Keep the database number in the URL (end it with /7 if that is the one you mean) "
        "and remove OPTIONS['db'].",
    ),
    (
        "password-in-options-and-url",
        {"URL": "redis://:hunter2@127.0.0.1:6390/0", "OPTIONS": {"password": "hunter3"}},
        "E009",
        "OPTIONS.password",
        "Redis connection 'x' has OPTIONS['password'] and its URL sets password too; redis-py "
        "would use the URL's.",
        "Keep one: remove OPTIONS['password'], or take password out of the URL.",
    ),
    (
        "client-name-in-options-and-query",
        {"URL": f"{S}/0?client_name=a", "OPTIONS": {"client_name": "b"}},
        "E009",
        "OPTIONS.client_name",
        "Redis connection 'x' has OPTIONS['client_name'] and its URL sets client_name too; "
        "redis-py would use the URL's.",
        "Keep one: remove OPTIONS['client_name'], or take client_name out of the URL.",
    ),
    (
        "db-not-a-number",
        {"URL": "redis://:pw@127.0.0.1:6390/abc"},
        "E005",
        "URL",
        "Redis connection 'x' has URL 'redis://:***@127.0.0.1:6390/abc' with the path '/abc' "
        "where the database number goes; redis-py would silently use db 0.",
        "End the URL with the database number, a whole number >= 0 (e.g. /0), or with "
        "nothing for db 0.",
    ),
    (
        "db-in-two-segments",
        {"URL": f"{S}/1/5"},
        "E005",
        "URL",
        "Redis connection 'x' has URL 'redis://127.0.0.1:6390/1/5' with the path '/1/5' "
        "where the database number goes; redis-py would silently use db 15.",
        "End the URL with the database number, a whole number >= 0 (e.g. /0), or with "
        "nothing for db 0.",
    ),
    (
        "db-in-path-and-query",
        {"URL": f"{S}/1?db=2"},
        "E009",
        "URL",
        "Redis connection 'x' has URL 'redis://127.0.0.1:6390/1?db=2' naming db 1 in its path "
        "and db 2 in its query; redis-py would use db 2.",
        "Keep one: the number after the last '/', or ?db=.",
    ),
    (
        "db-negative-in-query",
        {"URL": "unix:///run/redis.sock?db=-1"},
        "E005",
        "URL",
        "Redis connection 'x' has URL 'unix:///run/redis.sock?db=-1' naming db -1; a database "
        "number is a whole number >= 0.",
        None,
    ),
    (
        "db-negative-in-options",
        {"SENTINELS": SENTINELS, "SERVICE_NAME": "m", "OPTIONS": {"db": -1}},
        "E010",
        "OPTIONS.db",
        "Redis connection 'x' has OPTIONS['db']=-1; expected a whole number >= 0.",
        None,
    ),
    (
        "health-check-interval-in-url",
        {"URL": f"{S}/0?health_check_interval=5"},
        "E010",
        "URL.health_check_interval",
        "Redis connection 'x' has URL['health_check_interval'], which the "
        "HEALTH_CHECK_INTERVAL setting controls.",
        "Use HEALTH_CHECK_INTERVAL instead.",
    ),
    (
        "ssl-min-version-as-a-string",
        {"URL": "rediss://127.0.0.1:6390/0", "OPTIONS": {"ssl_min_version": "TLSv1_2"}},
        "E010",
        "OPTIONS.ssl_min_version",
        "Redis connection 'x' has OPTIONS['ssl_min_version']='TLSv1_2'; expected an "
        "ssl.TLSVersion, such as ssl.TLSVersion.TLSv1_2.",
        None,
    ),
    (
        "ssl-min-version-in-url",
        {"URL": "rediss://127.0.0.1:6390/0?ssl_min_version=99"},
        "E010",
        "URL.ssl_min_version",
        "Redis connection 'x' has URL['ssl_min_version']=99; expected an ssl.TLSVersion, such "
        "as ssl.TLSVersion.TLSv1_2.",
        None,
    ),
    (
        "ssl-ciphers",
        {"URL": "rediss://127.0.0.1:6390/0", "OPTIONS": {"ssl_ciphers": "NOT-A-CIPHER"}},
        "E010",
        "OPTIONS.ssl_ciphers",
        "Redis connection 'x' has OPTIONS['ssl_ciphers']='NOT-A-CIPHER'; expected an OpenSSL "
        "cipher list that this Python's ssl module accepts.",
        None,
    ),
    (
        "client-name-with-a-space",
        {"URL": f"{S}/0", "OPTIONS": {"client_name": "web 1"}},
        "E010",
        "OPTIONS.client_name",
        "Redis connection 'x' has OPTIONS['client_name']='web 1'; expected a string without "
        "spaces, newlines or other characters outside '!'..'~' (the server refuses them).",
        None,
    ),
    (
        "async-only-tls-option",
        {"URL": "rediss://127.0.0.1:6390/0", "OPTIONS": {"ssl_validate_ocsp": True}},
        "E010",
        "OPTIONS.ssl_validate_ocsp",
        "Redis connection 'x' has OPTIONS['ssl_validate_ocsp'], which a tls connection does "
        "not accept.",
        "Only one of redis-py's sync and asyncio clients takes it; the other would fail (or "
        "silently drop it).",
    ),
    (
        # Which options the sync cluster drops depends on the redis-py release (7.x drops
        # ssl_min_version, 8.x hands it on): tests/test_cluster_faults.py checks those against
        # the installed one. The asyncio cluster has never taken ssl_password.
        "cluster-option-the-async-cluster-refuses",
        {
            "URL": "rediss://127.0.0.1:7000",
            "CLUSTER": True,
            "OPTIONS": {"ssl_password": "k3y"},
        },
        "E010",
        "OPTIONS.ssl_password",
        "Redis connection 'x' has OPTIONS['ssl_password'], which a cluster-tls connection "
        "does not accept.",
        "Only one of redis-py's sync and asyncio clients takes it; the other would fail (or "
        "silently drop it).",
    ),
    (
        "credential-provider-with-a-password",
        {
            "URL": "redis://:hunter2@127.0.0.1:6390/0",
            "OPTIONS": {"credential_provider": Provider()},
        },
        "E010",
        "OPTIONS.credential_provider",
        "Redis connection 'x' has OPTIONS['credential_provider'] (Provider), which redis-py "
        "refuses: 'username' and 'password' cannot be passed along with 'credential_provider'. "
        "Please provide only one of the following arguments: 1. 'password' and (optional) "
        "'username' 2. 'credential_provider'.",
        None,
    ),
    (
        "credential-provider-with-a-username",
        {"URL": f"{S}/0", "OPTIONS": {"credential_provider": Provider(), "username": "u"}},
        "E010",
        "OPTIONS",
        "Redis connection 'x' has OPTIONS that redis-py refuses together: 'username' and "
        "'password' cannot be passed along with 'credential_provider'. Please provide only one "
        "of the following arguments: 1. 'password' and (optional) 'username' 2. "
        "'credential_provider'.",
        None,
    ),
]


@pytest.mark.parametrize(
    ("entry", "id", "key", "message", "hint"),
    [pytest.param(*case[1:], id=case[0]) for case in REFUSED],
)
def test_settings_redis_py_would_refuse_or_misread_are_configuration_errors(
    entry: dict[str, Any], id: str, key: str, message: str, hint: str | None
) -> None:
    problems = validate({"x": entry})
    assert [(p.id, p.connection, p.key, p.message, p.hint) for p in problems] == [
        (id, "x", key, message, hint)
    ]
    with pytest.raises(ConfigurationError) as info:
        parse({"x": entry})
    assert message in str(info.value)


def test_the_settings_reference_lists_the_exact_messages() -> None:
    """docs/settings.md, "Refused before anything connects": each row's settings give exactly
    the message (and id) the row shows."""
    page = (Path(__file__).resolve().parent.parent / "docs" / "settings.md").read_text("utf-8")
    section = page.split("### Refused before anything connects", 1)[1].split("\n### ", 1)[0]
    rows = re.findall(r"^\| `(\{.*\})` \| (E\d{3}) \| `(.*)` \|$", section, re.MULTILINE)
    assert len(rows) >= 20
    for entry, id, message in rows:
        problems = validate({"x": ast.literal_eval(entry)})
        assert [(p.id, str(p)) for p in problems] == [(id, message)], entry


def test_a_query_value_this_redis_py_would_decode_twice() -> None:
    """redis-py 7.x decodes URL query values twice (``%2541`` -> ``%41`` -> ``A``): a password
    with a '%' would silently be another password. Newer versions decode once: nothing to
    report there (CI runs both)."""
    url = "unix:///run/redis.sock?db=0&password=pa%2541ss"
    problems = validate({"x": {"URL": url}})
    if parse_url(url)["password"] == "pa%41ss":  # type: ignore[no-untyped-call]
        assert problems == []
        return
    assert [str(p) for p in problems] == [
        "Redis connection 'x' has URL 'unix:///run/redis.sock?db=0&password=***' whose "
        "?password= value this redis-py decodes twice (a '%' in it is read as an escape "
        "again), so it would use another value than the one written. HINT: Move the value to "
        "OPTIONS (a password may also go in the URL's user part, decoded once), or upgrade "
        "redis-py (newer versions decode query values once)."
    ]
