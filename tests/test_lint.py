"""Warnings about a valid config (pure): what will bite at run time, by key."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from agent.config import Config
from agent.config.lint import always_quiet, lint
from agent.config.schema import AlertsConfig, NotifierConfig, ScheduleConfig, ShopConfig

TZ = ZoneInfo("Asia/Shanghai")


def test_each_warning_names_its_key() -> None:
    config = Config(
        shops=(ShopConfig(name="甲", username="甲店:客服", password_env="P_A", notify=("ops",)),
               ShopConfig(name="乙", username="乙店", password_env="P_B")),
        notifiers={"ops": NotifierConfig(type="wecom", webhook_url="https://x/?key=1"),
                   "spare": NotifierConfig(type="wecom", webhook_url="https://x/?key=2")},
        alerts=AlertsConfig(quiet_hours="08:00-10:00"), schedule=ScheduleConfig(digest_cron="30 8 * * *"),
    )
    found = dict(lint(config, {"P_A": "secret"}))
    assert set(found) == {("shops", 1, "password_env"), ("shops", 1, "name"), ("shops", 1, "username"),
                          ("notifiers", "spare"), ("schedule", "digest_cron")}
    assert "P_B is not set" in found[("shops", 1, "password_env")] and "secret" not in str(found)


def test_a_cron_always_in_the_quiet_hours() -> None:
    assert always_quiet("30 8 * * *", "08:00-10:00", TZ)
    assert not always_quiet("0 9,12 * * *", "08:00-10:00", TZ)
    assert always_quiet("0 23,2 * * *", "22:00-07:00", TZ)  # quiet hours across midnight
    assert not always_quiet("0 7 * * *", "22:00-07:00", TZ)
