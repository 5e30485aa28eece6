"""The web console in a real browser: Playwright drives Debian's chromium through every
page against a broker holding JSON and binary records produced by confluent-kafka and
a real consumer group: overview, topics, a topic's partitions and configs, the message
browser (JSON, binary as hex, search, by time), creating a topic, producing a test message (read back
with confluent-kafka), the group's lag and an offset reset of the empty group (checked
by a consumer of that group afterwards), and the broker's configs.

With ``MOLDAU_CONSOLE_SCREENSHOT=1`` it also writes docs/console.png.
Cost: one broker process and one chromium, ~20 s.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from .broker_process import Broker, free_port
from .kafka_helpers import (
    Rec,
    admin_client,
    assert_delivered,
    confluent_produce,
    consumer_conf,
    create_topic,
    wait_until,
)

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (scripts/test installs it)")

JSON_TOPIC, BINARY_TOPIC, GROUP = "orders-json", "blobs-binary", "console-readers"
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "console.png"


@pytest.fixture(scope="module")
def console() -> Iterator[tuple[Broker, str]]:
    port = free_port()
    b = Broker({"moldau.http.listener": f"127.0.0.1:{port}"}, name="console-browser")
    try:
        b.start()
        create_topic(b.bootstrap, JSON_TOPIC, partitions=2)
        create_topic(b.bootstrap, BINARY_TOPIC, partitions=1)
        orders = [Rec(f"order-{i}".encode(), json.dumps({"id": i, "item": f"widget-{i}", "note": "<b>bold</b>"}).encode(),
                      (("source", b"test"),)) for i in range(20)]
        assert_delivered(confluent_produce(b.bootstrap, JSON_TOPIC, orders))
        blobs = [Rec(bytes([0, 255, i]), bytes(range(i, i + 64))) for i in range(5)]
        assert_delivered(confluent_produce(b.bootstrap, BINARY_TOPIC, blobs))
        # a real group: reads 12 records, commits, leaves (so it is Empty with lag 8)
        consumer = Consumer(consumer_conf(b.bootstrap, **{"group.id": GROUP}))
        try:
            consumer.assign([TopicPartition(JSON_TOPIC, 0, 0)])
            got = []
            deadline = time.monotonic() + 20
            while len(got) < 12 and time.monotonic() < deadline:
                msg = consumer.poll(0.5)
                if msg is not None and msg.error() is None:
                    got.append(msg)
            assert len(got) == 12
            consumer.commit(offsets=[TopicPartition(JSON_TOPIC, 0, 12)], asynchronous=False)
        finally:
            consumer.close()
        yield b, f"http://127.0.0.1:{port}/console"
    finally:
        b.dispose()


@pytest.fixture(scope="module")
def page(console: tuple[Broker, str]) -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            tab = browser.new_page(viewport={"width": 1280, "height": 800})
            tab.set_default_timeout(10_000)
            tab.on("dialog", lambda dialog: dialog.accept())  # the console's confirmations
            yield tab
        finally:
            browser.close()


def _cell_texts(page: object, selector: str) -> list[str]:
    return page.locator(selector).all_inner_texts()  # type: ignore[attr-defined]


def test_every_page_in_a_browser(console: tuple[Broker, str], page: object) -> None:
    broker, base = console
    p: sync_api.Page = page  # type: ignore[assignment]

    # overview: the broker, the controller, the version
    p.goto(base + "/")
    assert p.title().startswith("Overview")
    body = p.locator("main").inner_text()
    assert "this broker" in body and "controller" in body and "Moldau" in body

    # topics list -> topic -> partitions and configs
    p.click("header >> text=Topics")
    assert JSON_TOPIC in p.locator("table.topics").inner_text()
    p.click(f"table.topics >> text={JSON_TOPIC}")
    assert p.title().startswith(f"Topic {JSON_TOPIC}")
    partitions = p.locator("table.partitions tbody tr")
    assert partitions.count() == 2
    assert "20" in partitions.nth(0).inner_text()  # high watermark of partition 0
    assert "cleanup.policy" in p.locator("table.configs").inner_text()

    # create a topic (CreateTopics through its handler), seen by confluent-kafka's admin
    p.click("header >> text=Topics")
    p.fill("#create-topic input[name=name]", "made-in-console")
    p.fill("#create-topic input[name=partitions]", "3")
    p.click("#create-topic button")
    assert p.title().startswith("Topic made-in-console")
    assert p.locator("table.partitions tbody tr").count() == 3
    listed = admin_client(broker.bootstrap).list_topics(topic="made-in-console", timeout=10).topics["made-in-console"]
    assert listed.error is None and len(listed.partitions) == 3
    p.goto(f"{base}/topics/{JSON_TOPIC}")

    # message browser: JSON values pretty-printed, hostile markup shown as text
    p.click("text=browse messages")
    p.select_option("select[name=partition]", "0")
    p.fill("input[name=offset]", "0")
    p.click("#browse button")
    values = p.locator("pre.value")
    assert values.count() == 20
    assert values.first.get_attribute("data-format") == "json"
    assert '"item": "widget-0"' in values.first.inner_text()
    assert "<b>bold</b>" in values.first.inner_text()  # escaped: shown, not rendered
    assert p.locator("main b").count() == 0
    assert "source: test" in p.locator("pre.headers").first.inner_text()
    # the same as hex
    p.select_option("select[name=format]", "hex")
    p.click("#browse button")
    assert p.locator("pre.value").first.get_attribute("data-format") == "hex"
    assert p.locator("pre.value").first.inner_text().startswith("00000000  7b 22")  # '{"'
    # search within the range
    p.select_option("select[name=format]", "auto")
    p.fill("input[name=q]", "widget-17")
    p.click("#browse button")
    assert _cell_texts(p, "table.messages tbody tr td:first-child") == ["17"]
    # by time: from the first record's timestamp, the first record
    p.fill("input[name=q]", "")
    p.fill("input[name=offset]", "")
    p.fill("input[name=time]", "0")
    p.fill("input[name=limit]", "3")
    p.click("#browse button")
    assert _cell_texts(p, "table.messages tbody tr td:first-child") == ["0", "1", "2"]

    # binary values: shown as hex
    p.goto(f"{base}/topics/{BINARY_TOPIC}/messages?partition=0&offset=0")
    assert p.locator("pre.value").count() == 5
    assert p.locator("pre.value").first.get_attribute("data-format") == "hex"
    assert p.locator("pre.key").first.inner_text().startswith("00000000  00 ff 00")

    # produce a test message, then read it back with confluent-kafka
    p.goto(f"{base}/topics/{JSON_TOPIC}")
    p.select_option("select[name=partition]", "1")
    p.fill("input[name=key]", "from-the-console")
    p.fill("textarea[name=value]", '{"made": "in a browser"}')
    p.fill("textarea[name=headers]", "origin=console")
    p.click("#produce")
    p.wait_for_selector("p.ok")
    assert "Produced at offset 0" in p.locator("p.ok").inner_text()
    reader = Consumer(consumer_conf(broker.bootstrap))
    try:
        reader.assign([TopicPartition(JSON_TOPIC, 1, 0)])
        msg = None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (msg is None or msg.error() is not None):
            msg = reader.poll(0.5)
        assert msg is not None and msg.error() is None
        assert (msg.key(), msg.value(), msg.headers()) == (b"from-the-console", b'{"made": "in a browser"}',
                                                            [("origin", b"console")])
    finally:
        reader.close()

    # groups: the list, the group's lag, then an offset reset of the empty group
    p.click("header >> text=Groups")
    p.click(f"table.groups >> text={GROUP}")
    assert p.locator("#group-state").inner_text() == "Empty"
    offsets = p.locator("table.offsets tbody tr").first.inner_text()
    assert "12" in offsets and "20" in offsets
    assert p.locator("table.offsets .lag").first.inner_text() == "8"
    if os.environ.get("MOLDAU_CONSOLE_SCREENSHOT"):
        p.goto(f"{base}/topics/{JSON_TOPIC}/messages?partition=0&offset=10&limit=4")
        p.screenshot(path=str(SCREENSHOT), full_page=False)
        p.goto(f"{base}/groups/{GROUP}")
    p.select_option("select[name=topic]", JSON_TOPIC)
    p.select_option("select[name=strategy]", "earliest")
    p.click("#reset-preview")
    preview = p.locator("main table").first.inner_text()
    assert "12" in preview  # committed now
    p.click("#reset-confirm")
    p.wait_for_selector("p.ok")
    # a consumer of the group starts where the reset put it
    consumer = Consumer(consumer_conf(broker.bootstrap, **{"group.id": GROUP}))
    try:
        committed = consumer.committed([TopicPartition(JSON_TOPIC, 0)], timeout=10)
        assert committed[0].offset == 0
        consumer.subscribe([JSON_TOPIC])
        first: dict[int, int] = {}

        def read_some() -> bool:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                first.setdefault(msg.partition(), msg.offset())
            return 0 in first

        wait_until(read_some, timeout=20)
        assert first[0] == 0
    finally:
        consumer.close()

    # broker configs
    p.click("header >> text=Broker")
    assert "num.partitions" in p.locator("table.configs").inner_text()
