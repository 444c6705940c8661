"""Seeded generator of realistic sandbox shops and after-sales items."""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from datetime import date, timedelta
from typing import cast

DAY = 86400
AUTO_REFUND_WINDOW = 7 * DAY  # the platform's auto-refund window, observed up to 7 days
DEFAULT_ORDER_DATE = date(2026, 11, 21)
ITEM_KEYS = (
    "id", "orderSn", "afterSalesType", "state", "created_ago", "deadline_in", "proof_deadline_in",
    "reason", "goodsName", "goodsSpec", "goodsNumber", "orderAmount", "refundAmount", "shipped",
    "reverseTrackingNumber", "complaint_risk", "buyer_urged", "mallRemark",
)
PENDING_STATES = ("wait_seller", "wait_seller_receive")
CLOSED_STATES = ("refunded", "cancelled", "handled")

# Goods: (listing title, lowest and highest price in fen, spec template with {a|b} alternatives).
GOODS: tuple[tuple[str, int, int, str], ...] = (
    ("加厚珊瑚绒睡衣女冬季家居服套装可外穿2026新款", 3990, 8990,
     "颜色:{粉色小熊|灰色兔子|紫色星星|咖啡色};尺码:{M|L|XL|2XL}"),
    ("羽绒棉服男冬季加厚外套宽松韩版潮流面包服学生棉袄", 8990, 19900,
     "颜色:{黑色|军绿色|卡其色|藏青色};尺码:{L|XL|2XL|3XL|4XL}"),
    ("高腰阔腿牛仔裤女秋冬加绒宽松直筒显瘦拖地裤2026新款", 3990, 7990,
     "颜色:{浅蓝色|深蓝色|黑色加绒};尺码:{S|M|L|XL|2XL}"),
    ("老北京布鞋男士一脚蹬防滑软底中老年爸爸鞋加绒棉鞋", 1990, 4990,
     "颜色:{黑色单鞋|黑色加绒};尺码:{39|40|41|42|43|44}"),
    ("冬季加绒加厚雪地靴女短靴防滑防水面包棉鞋2026新款", 4990, 12900,
     "颜色:{黑色|栗色|米色};尺码:{35|36|37|38|39|40}"),
    ("儿童羽绒服男童女童中长款加厚洋气冬装宝宝外套", 5990, 19900,
     "颜色:{粉色|米白|蓝色|黑色};尺码:{100cm|110cm|120cm|130cm|140cm}"),
    ("男士纯棉袜子中筒秋冬季防臭吸汗长袜10双装", 990, 2290,
     "颜色:{混色10双|黑色10双|白色10双};尺码:{均码(39-44)}"),
    ("女士单肩斜挎包2026新款时尚百搭大容量通勤托特包", 3990, 12900,
     "颜色:{黑色|米白色|焦糖色|灰绿色}"),
    ("新疆阿克苏冰糖心苹果5斤装新鲜当季水果整箱包邮", 1990, 5990,
     "规格:{5斤装 单果75-80mm|10斤装 单果80-85mm|3斤尝鲜装}"),
    ("云南高山红薯蜜薯烟薯25号糖心新鲜现挖整箱", 1290, 2990,
     "重量:{净重3斤|净重5斤|净重9斤}"),
    ("广西柳州正宗螺蛳粉速食夜宵酸辣粉米粉整箱", 2490, 5990,
     "规格:{300g*5袋|300g*10袋|330g*3袋加辣}"),
    ("每日坚果混合果仁孕妇儿童零食大礼包独立小包装", 2990, 8990,
     "规格:{450g(18包)|750g(30包)|1050g(42包)}"),
    ("东北大米新米长粒香10斤农家自产真空包装珍珠米", 2990, 6990,
     "规格:{5kg 长粒香|5kg 稻花香|2.5kg 尝鲜装}"),
    ("抽纸整箱家用实惠装4层加厚面巾纸餐巾纸卫生纸", 1690, 3990,
     "规格:{18包(4层*300张)|30包(4层*300张)|40包 特厚}"),
    ("洗衣液香味持久留香10斤装薰衣草家庭装整箱", 1990, 3990,
     "规格:{2kg*2瓶|1kg*4袋|5kg 大桶}"),
    ("加厚一次性垃圾袋家用手提式背心式黑色大号厨房", 590, 1690,
     "规格:{45*50cm 100只|50*60cm 150只|60*80cm 50只}"),
    ("厨房置物架落地多层收纳架微波炉烤箱架子家用多功能", 3990, 12900,
     "规格:{两层 白色|三层 黑色|四层 碳钢加厚}"),
    ("厨房湿巾去油污一次性抹布加厚大张清洁纸巾", 690, 1990,
     "规格:{80抽*3包|80抽*6包}"),
    ("懒人拖把免手洗家用一拖净平板拖把吸水拖地神器", 1290, 3990,
     "规格:{标准款+10片|升级款+20片|豪华款+30片}"),
    ("304不锈钢保温杯女大容量男士便携学生水杯", 1990, 4990,
     "颜色:{奶白色|樱花粉|星空蓝|曜石黑};容量:{500ml|750ml|1000ml}"),
    ("手机壳适用苹果15ProMax透明磁吸防摔全包镜头保护套", 390, 2990,
     "型号:{iPhone15ProMax|iPhone15Pro|iPhone14|iPhone13};颜色:{透明磁吸款|磨砂黑}"),
    ("65W氮化镓快充充电器头适用华为小米苹果typec数据线套装", 1990, 4990,
     "规格:{65W充电头+1米线|65W充电头+2米线|单充电头}"),
    ("蓝牙耳机真无线降噪运动入耳式超长续航适用苹果华为", 2990, 12900,
     "颜色:{白色|黑色|粉色};版本:{标准版|降噪顶配版}"),
    ("婴儿拉拉裤超薄透气干爽纸尿裤尿不湿整箱", 4990, 12900,
     "尺码:{M码 64片|L码 54片|XL码 46片|XXL码 40片}"),
    ("电热毯单人双人家用双控调温安全防水学生宿舍", 3990, 9990,
     "规格:{1.5*0.7m 单控|1.8*1.5m 双控|2.0*1.8m 双控}"),
    ("加厚牛奶绒四件套冬季珊瑚绒床单被套法兰绒床上用品", 7990, 19900,
     "颜色:{奶咖色|雾霾蓝|豆沙粉|灰白格};规格:{1.5m床|1.8m床}"),
    ("洗脸巾一次性纯棉加厚擦脸巾抽取式洁面巾", 990, 2990,
     "规格:{3包(240抽)|6包(480抽)|10包(800抽)}"),
    ("保湿面霜补水滋润秋冬男女护肤品正品", 2990, 9990,
     "规格:{50g|100g|50g*2瓶}"),
    ("豆腐猫砂除臭无尘10公斤原味绿茶结团宠物用品", 3990, 7990,
     "规格:{原味 2.5kg*4包|绿茶味 2.5kg*4包|活性炭 6L*4包}"),
    ("中性笔0.5mm黑色按动速干学生考试专用笔文具", 590, 1990,
     "规格:{黑色 30支|黑色 60支+笔芯|蓝黑混装 20支}"),
    ("汽车头枕护颈枕车用腰靠记忆棉车载靠枕", 2990, 8990,
     "颜色:{黑色|米色|灰色};规格:{头枕|头枕+腰靠套装}"),
    ("充电暖手宝移动电源二合一可爱迷你随身暖宝宝", 2990, 6990,
     "颜色:{奶白|粉色|薄荷绿};规格:{5000毫安|10000毫安}"),
)
PRICES = (
    390, 490, 590, 690, 790, 890, 990, 1190, 1290, 1490, 1590, 1690, 1890, 1990, 2290, 2490, 2590, 2790, 2990,
    3290, 3490, 3590, 3990, 4590, 4990, 5590, 5990, 6990, 7990, 8990, 9900, 10900, 12900, 13900, 15900, 16900,
    19900, 23900, 25900, 29900, 32900, 36900, 39900,
)
# Buyer reasons and what a buyer sometimes types after them.
REASONS: dict[str, tuple[str, ...]] = {
    "不想要了": ("买多了不想要了", "家里人已经买了", "别家更便宜"),
    "拍错了/多拍了": ("颜色拍错了", "下单下了两次", "规格拍错了麻烦取消"),
    "地址填写错误": ("地址写错了，重新拍", "收货人电话填错了"),
    "未按约定时间发货": ("说好48小时发货，三天了还没发", "着急用，等不了了"),
    "快递一直未送到": ("物流好几天没更新了", "显示派送中一直没收到", "快递说丢件了"),
    "质量问题": ("衣服洗一次就掉色了", "用了两天就坏了", "做工太差，线头很多", "有很大的异味"),
    "尺码不合适": ("偏小一码，穿不上", "按尺码表拍的还是大", "太挤脚了"),
    "商品与描述不符": ("和图片颜色差很多", "说是加厚的，其实很薄", "材质和详情页写的不一样"),
    "少件/漏发": ("少发了一件", "拍的两包只收到一包", "配件没有"),
    "7天无理由退货": ("不合适", "不喜欢", "效果一般"),
    "收到商品破损": ("外箱压坏了，里面也碎了", "到手就是裂的", "漏液了，袋子全湿了"),
}
UNSHIPPED_REASONS = ("不想要了", "拍错了/多拍了", "地址填写错误", "未按约定时间发货")
TYPE_REASONS: dict[int, tuple[str, ...]] = {
    1: ("快递一直未送到", "质量问题", "少件/漏发", "收到商品破损", "商品与描述不符", "不想要了"),
    2: ("7天无理由退货", "质量问题", "尺码不合适", "商品与描述不符", "收到商品破损", "不想要了"),
    3: ("尺码不合适", "质量问题", "商品与描述不符"),
    4: ("少件/漏发", "收到商品破损"),
}
REMARKS = ("已联系买家协商", "等买家寄回", "已通知快递拦截", "仓库核实中", "补发单号已给买家")
TRACKING = (("SF", 13), ("YT", 13), ("75", 13), ("43", 13), ("77", 13), ("JT", 13), ("JDVA", 11))
SHOP_HEADS = (
    "暖语家居", "优品百货", "惠多多", "初见服饰", "山野农庄", "鲜果时光", "小鹿母婴",
    "锦绣家纺", "酷玩数码", "星辰文具", "喵趣宠物", "禾丰粮油", "悦颜美妆", "潮牌男装",
    "简约生活", "福满堂", "乐家日用", "绿野鲜蔬", "安心车品", "云朵鞋业", "橙心果园",
)
SHOP_TAILS = ("旗舰店", "专营店", "官方店", "工厂店", "的小店", "百货店")
MOBILE_HEADS = ("138", "139", "136", "158", "186", "177", "150", "187")


def _spec(rng: random.Random, template: str) -> str:
    return re.sub(r"\{([^}]*)\}", lambda m: rng.choice(m.group(1).split("|")), template)


def _amounts(rng: random.Random, lo: int, hi: int) -> tuple[int, int]:
    """(goodsNumber, orderAmount in fen): a listed price, sometimes less a coupon."""
    price = rng.choice([p for p in PRICES if lo <= p <= hi])
    number = 1 if price > 5000 or rng.random() < 0.8 else rng.randint(2, 3)
    amount = price * number
    if rng.random() < 0.2:
        amount -= rng.choice((100, 200, 300, 500, rng.randint(11, 299)))
    return number, max(390, min(amount, 39900))


def _reason(rng: random.Random, after_sales_type: int, shipped: bool, sized: bool) -> str:
    pool = UNSHIPPED_REASONS if not shipped else TYPE_REASONS[after_sales_type]
    reason = rng.choice([r for r in pool if sized or r != "尺码不合适"])
    return f"{reason}，{rng.choice(REASONS[reason])}" if rng.random() < 0.35 else reason


def _tracking(rng: random.Random) -> str:
    prefix, length = rng.choice(TRACKING)
    return prefix + "".join(str(rng.randrange(10)) for _ in range(length))


def _item(rng: random.Random, state: str, created_ago: int, after_sales_type: int = 0) -> dict[str, object]:
    """One item with goods, amounts and reason filled in; 0 picks a random after-sales type."""
    name, lo, hi, template = rng.choice(GOODS)
    spec = _spec(rng, template)
    if not after_sales_type:
        after_sales_type = rng.choices((1, 2, 3, 4), weights=(45, 42, 8, 5))[0]
    shipped = after_sales_type != 1 or rng.random() < 0.55
    number, order_amount = _amounts(rng, lo, hi)
    refund = order_amount
    if after_sales_type in (1, 2) and rng.random() < 0.15:  # partial refund agreed with the buyer
        refund = max(100, order_amount - rng.choice((200, 500, 1000, order_amount // 2)))
    return {
        "id": 0, "orderSn": "", "afterSalesType": after_sales_type, "state": state,
        "created_ago": created_ago, "deadline_in": None, "proof_deadline_in": None,
        "reason": _reason(rng, after_sales_type, shipped, "尺码" in spec),
        "goodsName": name, "goodsSpec": spec, "goodsNumber": number,
        "orderAmount": order_amount, "refundAmount": min(refund, order_amount), "shipped": shipped,
        "reverseTrackingNumber": "", "complaint_risk": False, "buyer_urged": False, "mallRemark": "",
    }


def _pending(rng: random.Random, deadline_in: int, order_date: date) -> dict[str, object]:
    """A wait_seller / wait_seller_receive item whose automatic refund is `deadline_in` seconds away."""
    since = AUTO_REFUND_WINDOW - deadline_in - rng.randint(30, 900)  # seconds the current stage has run
    if rng.random() < 0.2:  # a return the buyer has sent back: the clock restarted when it was shipped
        item = _item(rng, "wait_seller_receive", max(since, 0) + rng.randint(DAY // 2, 3 * DAY), 2)
        item["reverseTrackingNumber"] = _tracking(rng) if rng.random() < 0.85 else ""
    else:
        item = _item(rng, "wait_seller", max(since, 60))
    item["deadline_in"] = deadline_in
    item["complaint_risk"] = rng.random() < 0.1
    item["buyer_urged"] = rng.random() < 0.1
    if rng.random() < 0.05:
        when = order_date - timedelta(days=rng.randint(0, 2))
        stamp = f"{when:%m/%d} {rng.randint(9, 22)}:{rng.randint(0, 59):02d}"
        item["mallRemark"] = f"{rng.choice(REMARKS)} [店铺:客服01 {stamp}]"
    return item


def _spread(rng: random.Random, count: int, lo: int, hi: int) -> list[int]:
    """`count` values spread evenly over [lo, hi) with jitter."""
    return [lo + int((i + rng.random()) * (hi - lo) / count) for i in range(count)]


def generate_items(
    seed: int,
    *,
    pending: int = 0,
    expiring: int = 0,
    evidence: int = 0,
    evidence_expiring: int = 0,
    wait_buyer: int = 0,
    closed: int = 0,
    start_id: int | None = None,
    order_date: date = DEFAULT_ORDER_DATE,
) -> list[dict[str, object]]:
    """Items of one shop, newest first; same arguments give the same list."""
    rng = random.Random(seed)
    items = [_pending(rng, d, order_date) for d in _spread(rng, pending, DAY + 600, AUTO_REFUND_WINDOW - 600)]
    items += [_pending(rng, d, order_date) for d in _spread(rng, expiring, 600, 23 * 3600)]
    proofs = _spread(rng, evidence, DAY + 600, 72 * 3600) + _spread(rng, evidence_expiring, 3600, DAY - 600)
    for proof in proofs:
        item = _item(rng, "platform", rng.randint(2 * DAY, 10 * DAY), rng.choice((1, 2, 2)))
        item["proof_deadline_in"] = proof
        item["complaint_risk"] = rng.random() < 0.25
        if item["afterSalesType"] == 2 and rng.random() < 0.6:
            item["reverseTrackingNumber"] = _tracking(rng)
        items.append(item)
    for _ in range(wait_buyer):  # merchant agreed to the return (or refused): the buyer must act
        items.append(_item(rng, "wait_buyer", rng.randint(DAY // 2, 5 * DAY), rng.choice((1, 2, 2, 3))))
    for _ in range(closed):
        item = _item(rng, rng.choice(CLOSED_STATES), rng.randint(DAY, 20 * DAY))
        if item["afterSalesType"] == 2 and item["state"] != "cancelled":
            item["reverseTrackingNumber"] = _tracking(rng)
        items.append(item)

    items.sort(key=lambda it: -cast(int, it["created_ago"]))  # oldest first: ids grow with time
    next_id = 22_700_000_000_000 + rng.randrange(10**11) if start_id is None else start_id
    order_sns: set[str] = set()
    for item in items:
        days_ago = cast(int, item["created_ago"]) // DAY + rng.randint(0, 5 if item["shipped"] else 1)
        ordered = order_date - timedelta(days=days_ago)
        order_sn = ""
        while not order_sn or order_sn in order_sns:
            order_sn = f"{ordered:%y%m%d}-{rng.randrange(10**14, 10**15)}"
        order_sns.add(order_sn)
        item["id"], item["orderSn"] = next_id, order_sn
        next_id += rng.randint(1, 4000)
    if items and not (10**13 <= cast(int, items[0]["id"]) and cast(int, items[-1]["id"]) < 10**14):
        raise ValueError(f"start_id {start_id} does not give 14-digit ids")
    return items[::-1]


def shop_name(rng: random.Random) -> str:
    """A realistic PDD shop name such as 「暖语家居旗舰店」."""
    return rng.choice(SHOP_HEADS) + rng.choice(SHOP_TAILS)


def _mobile(rng: random.Random) -> str:
    return f"{rng.choice(MOBILE_HEADS)}****{rng.randrange(10000):04d}"


def generate_shop(
    seed: int,
    *,
    index: int = 0,
    name: str | None = None,
    login: str = "password",
    password: str = "sandbox-pass",
    order_date: date = DEFAULT_ORDER_DATE,
    **counts: int,
) -> dict[str, object]:
    """A shop with a main account, a sub-account 「<name>:客服01」 and generated items.

    `index` keeps item ids of different shops in one scenario apart; `counts` are
    the item counts of `generate_items` (pending, expiring, evidence, ...).
    """
    if login not in ("password", "sms", "qr_only"):
        raise ValueError(f"unknown login {login!r}")
    unknown = set(counts) - {"pending", "expiring", "evidence", "evidence_expiring", "wait_buyer", "closed"}
    if unknown:
        raise TypeError(f"unknown item counts: {sorted(unknown)}")
    rng = random.Random(seed)
    mall_id = rng.randrange(10**8, 10**9)
    name = name or shop_name(rng)
    items = generate_items(
        rng.randrange(2**32),
        pending=counts.get("pending", 0),
        expiring=counts.get("expiring", 0),
        evidence=counts.get("evidence", 0),
        evidence_expiring=counts.get("evidence_expiring", 0),
        wait_buyer=counts.get("wait_buyer", 0),
        closed=counts.get("closed", 0),
        start_id=22_750_000_000_000 + index * 10**9 + rng.randrange(10**8),
        order_date=order_date,
    )
    return {
        "mall_id": mall_id,
        "name": name,
        "accounts": [
            {"username": name, "password": password, "login": login, "mobile": _mobile(rng)},
            {"username": f"{name}:客服01", "password": password, "login": "password", "mobile": _mobile(rng)},
        ],
        "items": items,
    }


def generate_scenario(
    seed: int, shops: int, *, order_date: date = DEFAULT_ORDER_DATE, **counts: int
) -> dict[str, object]:
    """`shops` generated shops with unique names and mall ids, each with the same item counts."""
    result: list[dict[str, object]] = []
    names: set[str] = set()
    mall_ids: set[object] = set()
    for i in range(shops):
        rng = random.Random(seed + i)
        name = shop_name(rng)
        for _ in range(30):
            if name not in names:
                break
            name = shop_name(rng)
        else:
            name = f"{name.removesuffix('店')}{i + 1}号店"
        shop = generate_shop(seed + i, index=i, name=name, order_date=order_date, **counts)
        while shop["mall_id"] in mall_ids:
            shop["mall_id"] = rng.randrange(10**8, 10**9)
        names.add(name)
        mall_ids.add(shop["mall_id"])
        result.append(shop)
    return {"name": f"generated-{shops}", "settings": {}, "shops": result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pdd-agent sandbox generate", description=__doc__)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--shops", type=int, default=1)
    parser.add_argument("--pending", type=int, default=20, help="pending items due in more than 24 h")
    parser.add_argument("--expiring", type=int, default=5, help="pending items due within 24 h")
    parser.add_argument("--evidence", type=int, default=2, help="evidence owed, due in more than 24 h")
    parser.add_argument("--evidence-expiring", type=int, default=1, help="evidence owed within 24 h")
    parser.add_argument("--wait-buyer", type=int, default=2)
    parser.add_argument("--closed", type=int, default=5)
    parser.add_argument("--out", metavar="FILE", help="write here instead of standard output")
    args = parser.parse_args(argv)
    counts = ("pending", "expiring", "evidence", "evidence_expiring", "wait_buyer", "closed")
    if args.shops < 1 or any(getattr(args, key) < 0 for key in counts):
        parser.error("--shops must be at least 1 and counts must not be negative")
    scenario = generate_scenario(args.seed, args.shops, **{key: getattr(args, key) for key in counts})
    text = json.dumps(scenario, ensure_ascii=False, indent=1) + "\n"
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
