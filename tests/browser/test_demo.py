"""The README's first command in its CI form: the whole demo story, end to end, must complete."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_tells_the_whole_story() -> None:
    r = subprocess.run([sys.executable, "-m", "agent", "demo", "--fast", "--no-color"], cwd=ROOT,
                       capture_output=True, text=True, timeout=280)
    out = r.stdout
    assert r.returncode == 0, out[-4000:] + r.stderr[-4000:]
    assert "\033[" not in out  # --no-color
    assert "演示结束 / demo summary：完成" in out
    # the escalating item went through its stages, claimed by 张三 after the first (6 h quiet), then was handled
    assert "逐级提醒 3 次（stage0, stage2, stage3），张三认领后 6 小时提醒未群发，2 条提醒标明「已认领：张三」" in out
    assert "【紧急·售后】" in out and "@138****1234" in out and "@139****5678" in out
    assert "已认领：张三" in out and "备注：已联系买家，换码处理中" in out
    assert "团队页面 / team page：http://127.0.0.1:" in out and "认领 / 查看 (http://127.0.0.1:" in out
    assert "【已处理】" in out and "【已超时自动退款，损失 ¥89.90】" in out
    # the QR-only shop: a login alert with the QR drawn, the scan, the recovery
    assert "需要登录（扫码）" in out and "[图片] 登录二维码" in out and "▄▄▄▄▄" in out
    assert "已恢复：店铺可以正常读取" in out
    # mail copies reached the local inbox; the hostile buyer text stayed inert
    assert "── 邮箱 · 收件箱 ──" in out and "主题：【示例专营店】店铺监控：需要登录（扫码）" in out
    assert "<script>" not in out and "＜script＞" in out
    assert "待发送 0 条，失败 0 条" in out
    # beyond the deadlines: a complaint warning, quality-refund risks, the platform stepping in, and the digest's
    # money section (yesterday's refunds the merchant did not agree to, and what to ask back)
    assert "【投诉预警】" in out and "【品质退款风险】" in out and "【平台已介入，请准备凭证】" in out
    # (the story's own refunds fall on "yesterday" too at some hours of the day: the demo's three are always there)
    assert "昨日退款（非商家同意）：" in out
    assert "超时自动退款 · 仅退款 订单 261120-001660518370001 · ¥15.90" in out
    assert "平台代为同意（极速退款） · 仅退款 订单 261120-002660518370002 · ¥49.90" in out
    assert "可联系买家补款：2 单，共 ¥75.80" in out and "本周品质类售后：" in out
    assert "【工单即将逾期】24小时内将逾期工单 2 单" in out and "工单管理 (http://" in out
    assert "【工单已处理】" in out and "【平台同意退款】24小时内平台同意退款 " in out
    assert out.count("【工单即将逾期】") == 1  # told once, cleared before any reminder was due
