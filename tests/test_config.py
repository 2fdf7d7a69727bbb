"""Config validation: every problem reported as FILE:LINE: path: message; nothing starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ROOT, SECRET, write_config
from worker.cli import main
from worker.config import load_config
from worker.errors import ConfigError


def problems(folder: Path, body: str, topics: bool = True) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(write_config(folder, body, topics=topics))
    return info.value.problems


def test_shipped_configs_are_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(ROOT / "config" / "newswatch.yaml")
    assert {"ceasefire-talks", "hostage-releases"} <= set(config.topics)
    assert all(f.url.startswith("file://") for f in config.feeds)
    monkeypatch.setenv("NEWSWATCH_OPS_SECRET", SECRET)
    monkeypatch.setenv("NEWSWATCH_SMTP_URL", "smtp://mail.example.org:587?starttls=1")
    live = load_config(ROOT / "config" / "live.example.yaml")
    assert all(f.url.startswith("https://") for f in live.feeds)
    assert {s.channel for s in live.subscribers} == {"webhook", "email"}


def test_every_error_with_file_line_and_path(tmp_path: Path) -> None:
    found = problems(tmp_path, """\
        feeds:
          - url: ftp://example.org/feed
          - name: no url
        subscribers:
          - id: ops
            webhook: https://hooks.example.org/x
            topics: [hostage-releases]
          - id: desk
            outbox: out
            topics: [hostage-releases, nope]
            qurey: typo
        """)
    path = tmp_path / "newswatch.yaml"
    assert f"{path}:2: feeds[0].url: unsupported URL scheme 'ftp' (use http, https or file)" \
        in found
    assert f"{path}:3: feeds[1]: a feed needs exactly one of 'url' or 'opml'" in found
    assert any(p.startswith(f"{path}:5: subscribers[0]: a webhook subscriber needs a 'secret'")
               for p in found)
    assert any(p.startswith(f"{path}:11: subscribers[1].qurey: unknown key (known: id, topics, ")
               for p in found), found
    assert f"{path}:10: subscribers[1].topics[1]: unknown topic 'nope' (known: " \
           "ceasefire-talks, hostage-releases)" in found        # all at once


def test_unknown_topic_is_named_with_its_line(tmp_path: Path) -> None:
    found = problems(tmp_path, """\
        subscribers:
          - id: desk
            outbox: out
            topics: [hostage-releases,
                     nope]
        """)
    assert found == [f"{tmp_path / 'newswatch.yaml'}:5: subscribers[0].topics[1]: unknown "
                     "topic 'nope' (known: ceasefire-talks, hostage-releases)"]


def test_query_syntax_error_names_topic_line_and_column(tmp_path: Path) -> None:
    found = problems(tmp_path, """\
        topics:
          t1:
            name: T1
            query: (ceasefire OR truce AND talks
        """, topics=False)
    assert found == [f"{tmp_path / 'newswatch.yaml'}:4: topics.t1.query: column 30: "
                     "expected ) to close the ( at column 1"]


def test_yaml_syntax_error(tmp_path: Path) -> None:
    found = problems(tmp_path, "feeds:\n  - url: [unclosed\n", topics=False)
    assert len(found) == 1 and found[0].startswith(f"{tmp_path / 'newswatch.yaml'}:")
    assert "YAML" in found[0]


def test_duplicate_keys_and_ids(tmp_path: Path) -> None:
    found = problems(tmp_path, """\
        subscribers:
          - id: desk
            outbox: a
            topics: [hostage-releases]
          - id: desk
            outbox: b
            topics: [hostage-releases]
        settings:
          poll_interval: 60
          poll_interval: 120
        """)
    assert any(":10: settings.poll_interval: duplicate key" in p for p in found)
    assert any(":5: subscribers[1].id: duplicate subscriber id 'desk'" in p for p in found)


def test_env_substitution_and_missing_variable(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    body = """\
        subscribers:
          - id: ops
            webhook: https://hooks.example.org/x
            secret: ${TEST_NW_SECRET}
            topics: [hostage-releases]
        settings:
          redis_url: ${TEST_NW_REDIS:-redis://localhost:6379/3}
        """
    monkeypatch.delenv("TEST_NW_SECRET", raising=False)
    found = problems(tmp_path, body)
    assert any(":4: subscribers[0].secret: environment variable TEST_NW_SECRET is not set" in p
               for p in found)
    monkeypatch.setenv("TEST_NW_SECRET", SECRET)
    config = load_config(write_config(tmp_path, body))
    assert config.subscribers[0].secret == SECRET
    assert config.settings.redis_url == "redis://localhost:6379/3"


def test_settings_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSWATCH_POLL_INTERVAL", "60")
    monkeypatch.setenv("NEWSWATCH_ALLOW_PRIVATE_NETWORKS", "true")
    config = load_config(write_config(tmp_path, "feeds: []\n"))
    assert config.settings.poll_interval == 60
    assert config.settings.allow_private_networks is True
    monkeypatch.setenv("NEWSWATCH_POLL_INTERVAL", "soon")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "newswatch.yaml")
    assert info.value.problems[0].startswith("env NEWSWATCH_POLL_INTERVAL: "
                                             "settings.poll_interval:")


def test_relative_feed_paths_and_opml(tmp_path: Path) -> None:
    (tmp_path / "feeds.opml").write_text("""<?xml version="1.0"?>
<opml version="2.0"><head><title>desk</title></head><body>
  <outline text="World"><outline text="Wire" type="rss" xmlUrl="https://wire.example/rss"/>
  </outline></body></opml>""")
    config = load_config(write_config(tmp_path, """\
        feeds:
          - url: local.xml
            name: Local
          - opml: feeds.opml
        """))
    assert [f.url for f in config.feeds] == [(tmp_path / "local.xml").as_uri(),
                                             "https://wire.example/rss"]
    assert [f.name for f in config.feeds] == ["Local", "Wire"]
    assert len({f.id for f in config.feeds}) == 2


def test_unknown_time_zone(tmp_path: Path) -> None:
    found = problems(tmp_path, """\
        subscribers:
          - id: desk
            outbox: out
            topics: [ceasefire-talks]
            digest: daily
            timezone: Europe/Atlantis
        """)
    assert any(":6: subscribers[0].timezone: unknown time zone 'Europe/Atlantis'" in p
               for p in found)


def test_email_subscriber_needs_smtp(tmp_path: Path) -> None:
    found = problems(tmp_path, """\
        subscribers:
          - id: desk
            email: desk@example.org
            topics: [ceasefire-talks]
        """)
    assert any(":3: subscribers[0].email: email subscribers need settings.smtp_url" in p
               for p in found)


def test_check_command_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write_config(tmp_path, """\
        feeds:
          - url: https://news.example.org/rss
        subscribers:
          - id: desk
            outbox: out
            topics: [ceasefire-talks]
        """)
    assert main(["check", "--config", str(good)]) == 0
    assert "OK: 1 feeds, 2 topics, 1 subscribers" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("topics:\n  x:\n    name: X\n    query: 'a AND'\n")
    assert main(["check", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"{bad}:4: topics.x.query: column 6: unexpected end of the " \
                          "query: expected a term, a \"phrase\" or ("
    assert main(["check", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read config" in capsys.readouterr().err


def test_check_refuses_a_config_that_would_do_nothing(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\nsettings:\n  poll_interval: 300\n")
    assert main(["check", "--config", str(empty)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"{empty}:1: feeds: none: there is nothing to poll",
                   f"{empty}:1: topics: none: nothing would ever match",
                   f"{empty}:1: subscribers: none: matches would reach nobody"]


def test_a_missing_variable_is_one_problem(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_SECRET", raising=False)
    found = problems(tmp_path, """\
        subscribers:
          - id: ops
            webhook: https://hooks.example.org/x
            secret: ${NO_SUCH_SECRET}
            topics: [hostage-releases]
        """)
    assert found == [f"{tmp_path / 'newswatch.yaml'}:4: subscribers[0].secret: environment "
                     "variable NO_SUCH_SECRET is not set"]


@pytest.mark.parametrize(("yaml_text", "expected"), [
    ("settings:\n  pol_interval: 60\n", "settings.pol_interval: unknown key (did you mean "
                                         "'poll_interval'?)"),
    ("subscriber:\n  - id: x\n", "subscriber: unknown key (did you mean 'subscribers'?)"),
    ("topics:\n  t:\n    name: T\n    querry: truce\n",
     "topics.t.querry: unknown key (did you mean 'query'?)"),
    ("topics:\n  t:\n    name: T\n    query: truce\n    semantic:\n      treshold: 0.5\n",
     "topics.t.semantic.treshold: unknown key (did you mean 'threshold'?)"),
])
def test_unknown_keys_get_a_did_you_mean(tmp_path: Path, yaml_text: str, expected: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert any(p.endswith(expected) for p in info.value.problems), info.value.problems


def test_every_part_is_checked_whatever_else_is_wrong(tmp_path: Path) -> None:
    """A bad setting, a bad query, a bad subscriber and a bad feed: four problems at once
    (field errors hid the others until they were fixed)."""
    found = problems(tmp_path, """\
        feeds:
          - url: https://news.example.org/rss
          - url: gopher://old.example/feed
        topics:
          broken:
            name: Broken
            query: (truce AND
        subscribers:
          - id: desk
            outbox: out
            topics: [broken, missing]
          - id: "bad id"
            outbox: out
            topics: [broken]
        settings:
          poll_interval: 1
        """, topics=False)
    joined = "\n".join(found)
    assert "feeds[1].url: unsupported URL scheme 'gopher'" in joined
    assert "topics.broken.query: column" in joined
    assert "subscribers[0].topics[1]: unknown topic 'missing'" in joined
    assert "subscribers[0].topics[0]" not in joined            # a bad query is not unknown
    assert "subscribers[1].id: 'bad id': a subscriber id is" in joined
    assert "settings.poll_interval: Input should be greater than or equal to 10" in joined
