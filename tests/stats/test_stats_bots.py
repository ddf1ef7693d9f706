"""Bot detection: user agents, and reverse DNS verified by a forward lookup (fake resolver)."""

from __future__ import annotations

import pytest

from dibble.stats import BotDetector, ReverseDNS


class FakeResolver:
    """PTR and A records in dicts; counts the lookups."""

    def __init__(self, ptr: dict[str, str], a: dict[str, list[str]]) -> None:
        self.ptr = ptr
        self.a = a
        self.lookups = 0

    def reverse(self, address: str) -> str | None:
        self.lookups += 1
        return self.ptr.get(address)

    def forward(self, name: str) -> list[str]:
        return self.a.get(name, [])


@pytest.mark.parametrize(
    "agent",
    [
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        "Mozilla/5.0 (compatible; Yahoo! Slurp; http://help.yahoo.com/help/us/ysearch/slurp)",
        "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2)",
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 HeadlessChrome/120.0 Safari/537.36",
        "Mozilla/5.0 (compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
        "Pingdom.com_bot_version_1.4_(http://www.pingdom.com/)",
        "ia_archiver (+http://www.alexa.com/site/help/webmasters; crawler@alexa.com)",
        "Mozilla/5.0 zgrab/0.x",
        "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    ],
)
def test_bots_by_user_agent(agent: str) -> None:
    assert BotDetector().classify(agent)


@pytest.mark.parametrize(
    "agent",
    [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:126.0) Gecko/20100101 Firefox/126.0",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile",
        "Mozilla/5.0 (Linux; Android 9; CUBOT_X19) AppleWebKit/537.36 Chrome/120 Mobile",
        "curl/8.5.0",
        "Wget/1.21.4",
        "python-requests/2.32.3",
    ],
)
def test_people_and_their_tools(agent: str) -> None:
    assert not BotDetector().classify(agent)


def test_extra_patterns() -> None:
    detector = BotDetector(["^curl/", "wget"])
    assert detector.classify("curl/8.5.0")
    assert detector.classify("Wget/1.21")
    assert not detector.classify("Firefox")


def test_verdicts_are_cached_and_bounded() -> None:
    detector = BotDetector(cache_size=4)
    assert detector.agent_is_bot(b"Googlebot")
    assert not detector.agent_is_bot(None)
    assert detector.agents[b"Googlebot"] is True
    for i in range(10):
        detector.agent_is_bot(b"agent %d" % i)
    assert len(detector.agents) <= 4
    assert detector.agents[None] is False


def test_reverse_dns_verified_by_a_forward_lookup() -> None:
    resolver = FakeResolver(
        ptr={
            "66.249.66.1": "crawl-66-249-66-1.googlebot.com.",
            "203.0.113.9": "crawl-203-0-113-9.googlebot.com",  # a PTR anyone can set
            "198.51.100.4": "host.example.net",
        },
        a={
            "crawl-66-249-66-1.googlebot.com": ["66.249.66.1"],
            "crawl-203-0-113-9.googlebot.com": ["66.249.66.99"],
        },
    )
    rdns = ReverseDNS(resolver=resolver)
    assert rdns.verify("66.249.66.1")
    assert not rdns.verify("203.0.113.9")
    assert not rdns.verify("198.51.100.4")
    assert not rdns.verify("192.0.2.1")  # no PTR at all
    assert not rdns.verify("not an address")
    rdns.close()


def test_the_first_request_is_judged_by_its_agent_until_the_lookup_is_done() -> None:
    resolver = FakeResolver(
        ptr={"66.249.66.1": "crawl-66-249-66-1.googlebot.com"},
        a={"crawl-66-249-66-1.googlebot.com": ["66.249.66.1"]},
    )
    rdns = ReverseDNS(resolver=resolver)
    detector = BotDetector(reverse_dns=rdns)
    browser = b"Mozilla/5.0 (Windows NT 10.0) Chrome/120"
    assert not detector.is_bot(browser, "66.249.66.1")  # not known yet: a lookup starts
    assert rdns.wait()
    assert detector.is_bot(browser, "66.249.66.1")
    assert not detector.is_bot(browser, "192.0.2.1")
    assert rdns.wait()
    assert not detector.is_bot(browser, "192.0.2.1")
    assert resolver.lookups == 2  # each address once: the verdicts are cached
    detector.close()


def test_verdicts_expire() -> None:
    now = [0.0]
    resolver = FakeResolver(ptr={}, a={})
    rdns = ReverseDNS(resolver=resolver, ttl=10, clock=lambda: now[0])
    rdns.is_bot("192.0.2.1")
    assert rdns.wait()
    assert "192.0.2.1" in rdns.verdicts
    now[0] = 5
    assert rdns.purge() == 0
    now[0] = 11
    assert rdns.purge() == 1
    assert "192.0.2.1" not in rdns.verdicts
    rdns.close()


def test_lookups_are_bounded() -> None:
    resolver = FakeResolver(ptr={}, a={})
    rdns = ReverseDNS(resolver=resolver, max_entries=10)
    for i in range(30):
        rdns.is_bot(f"192.0.2.{i}")
        assert rdns.wait()
    assert len(rdns.verdicts) <= 10
    rdns.close()
    rdns.is_bot("192.0.2.200")  # closed: no new lookups, no error
    assert "192.0.2.200" not in rdns.verdicts
