"""Fixtures of the end-to-end tests: the fake WeCom robot server with one robot, "k1"."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agent.sandbox.wecom import FakeWeCom


@pytest.fixture
def wecom() -> Iterator[FakeWeCom]:
    fake = FakeWeCom(keys={"k1"}).start()
    try:
        yield fake
    finally:
        fake.stop()
