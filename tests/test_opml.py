"""OPML in and out: real readers' export shapes, the config edited safely, a round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ROOT, write_config
from worker.cli import main
from worker.config import load_config
from worker.errors import NewswatchError
from worker.feedlist import export_opml, import_opml
from worker.opml import OpmlError, read_opml

DATA = ROOT / "tests" / "data" / "opml"
FEEDLY = DATA / "feedly-export.opml"
INOREADER = DATA / "inoreader-export.opml"


def test_feedly_export_keeps_nested_categories() -> None:
    feeds = {f.url: f for f in read_opml(FEEDLY.read_bytes(), "feedly")}
    assert len(feeds) == 6                              # BBC is in two folders: one feed
    national = feeds["https://www.thenationalnews.com/arc/outboundfeeds/rss/"
                     "?outputType=xml&size=30"]          # &amp; decoded once
    assert national.categories == ("Middle East/Gulf",)
    assert national.title == "The National - UAE"
    assert feeds["https://www.aljazeera.com/xml/rss/all.xml"].categories == ("Middle East",)


def test_inoreader_tags_become_categories() -> None:
    feeds = {f.title: f for f in read_opml(INOREADER.read_bytes(), "inoreader")}
    assert feeds["UN News"].categories == ("Tag/humanitarian", "Tag/peace", "Tagged")


def test_not_an_opml_file() -> None:
    with pytest.raises(OpmlError, match=r"page\.html: not an OPML subscription list"):
        read_opml(b"<html><body><p>Sign in</p></body></html>", "page.html")
    with pytest.raises(OpmlError, match=r"latin\.opml: cannot read OPML"):
        read_opml('<opml><body><outline text="é"/></body></opml>'.encode("latin-1"),
                  "latin.opml")


CONFIG = """\
    # The desk's config: comments and layout must survive an import.
    feeds:
      - url: https://feeds.npr.org/1001/rss.xml   # already here: not imported again
        name: NPR
        categories: [Wires]
    subscribers: []
    """


def test_import_creates_a_managed_opml_and_round_trips(tmp_path: Path) -> None:
    path = write_config(tmp_path, CONFIG)
    before = path.read_text()
    result = import_opml(load_config(path), FEEDLY.read_bytes(), "feedly-export.opml")
    assert len(result.added) == 5 and [f.title for f in result.known] == ["NPR Topics: News"]
    assert result.config_edited and result.target == tmp_path / "feeds.opml"
    after = path.read_text()
    assert after.replace("  - opml: feeds.opml\n", "", 1) == before     # one line added
    config = load_config(path)
    assert len(config.feeds) == 6
    by_url = {f.url: f for f in config.feeds}
    assert by_url["http://feeds.bbci.co.uk/news/world/rss.xml"].categories == ("Africa",
                                                                               "Wires")
    assert by_url["https://feeds.npr.org/1001/rss.xml"].categories == ("Wires",)

    # Again: nothing new, nothing written.
    again = import_opml(config, FEEDLY.read_bytes(), "feedly-export.opml")
    assert again.added == [] and len(again.known) == 6 and path.read_text() == after

    # Export -> read back: the same feeds, titles, categories and sites (htmlUrl).
    exported = read_opml(export_opml(config), "export")
    assert {(f.url, f.title, f.categories, f.site) for f in exported} == \
        {(f.url, f.name, f.categories, f.site) for f in config.feeds}
    assert by_url["http://feeds.bbci.co.uk/news/world/rss.xml"].site == \
        "https://www.bbc.co.uk/news/world"


def test_import_skips_unpollable_urls_and_adds_to_a_listed_opml(tmp_path: Path) -> None:
    (tmp_path / "desk.opml").write_text('<opml version="2.0"><body>'
                                        '<outline text="UN" xmlUrl="https://news.un.org/'
                                        'feed/subscribe/en/news/all/rss.xml"/></body></opml>')
    path = write_config(tmp_path, "feeds: [{opml: desk.opml}]\n")
    result = import_opml(load_config(path), INOREADER.read_bytes(), "inoreader.opml")
    assert [f.title for f in result.added] == ["Kyiv Independent", "ReliefWeb - Updates",
                                               "Podcast"]
    assert result.added[2].url == "http://example.org/podcast.xml"    # feed:// is http://
    assert [f.title for f in result.known] == ["UN News"]
    assert sorted(why for _, why in result.skipped) == [
        "not an http(s) URL: '/relative/feed.xml'"]
    assert not result.config_edited and result.target == tmp_path / "desk.opml"
    assert len(load_config(path).feeds) == 4


@pytest.mark.parametrize("feeds", ["", "feeds:\n", "feeds: []\n",
                                   "feeds: [{url: 'https://a.example/rss'}]\n"])
def test_import_into_any_shape_of_feed_list(tmp_path: Path, feeds: str) -> None:
    path = write_config(tmp_path, f"settings: {{poll_interval: 600}}\n{feeds}")
    import_opml(load_config(path), FEEDLY.read_bytes(), "feedly")
    config = load_config(path)
    assert len(config.feeds) == 6 + ("a.example" in feeds)
    assert config.settings.poll_interval == 600


def test_cli_import_and_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path, CONFIG)
    assert main(["feeds", "import", "--config", str(path), str(INOREADER)]) == 0
    out = capsys.readouterr().out
    assert f"imported 4 new feeds into {tmp_path / 'feeds.opml'}" in out
    assert "skipped" in out and "/relative/feed.xml" in out
    exported = tmp_path / "out.opml"
    assert main(["feeds", "export", "--config", str(path), "-o", str(exported)]) == 0
    feeds = {f.title: f for f in read_opml(exported.read_bytes(), "out")}
    assert set(feeds) == {"NPR", "Kyiv Independent", "ReliefWeb - Updates", "UN News",
                          "Podcast"}
    assert feeds["Kyiv Independent"].site == "https://kyivindependent.com/"   # kept
    assert feeds["Podcast"].url == "http://example.org/podcast.xml"
    assert main(["feeds", "import", "--config", str(path), str(tmp_path / "missing.opml")]) == 1
    assert "missing.opml: cannot read: No such file or directory" in capsys.readouterr().err


def test_broken_opml_in_the_config_is_a_config_error(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.opml").write_text("<html><p>gone</p></html>")
    path = write_config(tmp_path, "feeds:\n  - opml: bad.opml\n")
    assert main(["check", "--config", str(path)]) == 2
    assert f"{path}:2: feeds[0].opml: bad.opml: not an OPML subscription list" in \
        capsys.readouterr().err


def test_an_import_that_breaks_the_config_is_undone(tmp_path: Path) -> None:
    path = write_config(tmp_path, CONFIG)
    config = load_config(path)
    before = path.read_text()
    # Another process broke the config between our load and the import's final check.
    path.write_text(before + "settings: {poll_interval: 1}\n")
    broken = path.read_text()
    with pytest.raises(NewswatchError, match="import undone"):
        import_opml(config, FEEDLY.read_bytes(), "feedly")
    assert path.read_text() == broken and not (tmp_path / "feeds.opml").exists()
