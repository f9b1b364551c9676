"""Deterministic, lazy generation of a shop's orders from ``(seed, index)``.

Nothing is stored per order: ``meta(i)`` (id, timestamps, status flags) is a handful of integer
hashes, and ``order(i)`` builds the full order on demand.  ``created_at`` is non-decreasing in the
index and ``updated_at - created_at`` is bounded by ``max_edit_delay_seconds``, so windows on
either timestamp are found by binary search on the index.
"""

from __future__ import annotations

import random
from bisect import bisect_left
from decimal import Decimal
from functools import lru_cache
from typing import Any, NamedTuple

from .config import ShopConfig

M64 = (1 << 64) - 1
CENT = Decimal("0.01")

F_CANCELLED = 1
F_REFUNDED = 2
F_FULL_REFUND = 4
F_EDITED = 8
F_TEST = 16
F_CLOSED = 32
F_GUEST = 64
META_CACHE = 1 << 16


def mix(*parts: int) -> int:
    """A 64-bit hash of integers (splitmix64 rounds); stable across runs and platforms."""
    x = 0x9E3779B97F4A7C15
    for p in parts:
        x = ((x ^ (p & M64)) * 0xBF58476D1CE4E5B9) & M64
        x ^= x >> 31
        x = (x * 0x94D049BB133111EB) & M64
        x ^= x >> 29
    return x


def _fields(h: int) -> tuple[float, float, float, float]:
    """Four fractions in [0, 1) from the 16-bit fields of a 64-bit hash."""
    return (
        (h & 0xFFFF) / 65536.0,
        ((h >> 16) & 0xFFFF) / 65536.0,
        ((h >> 32) & 0xFFFF) / 65536.0,
        ((h >> 48) & 0xFFFF) / 65536.0,
    )


class Meta(NamedTuple):
    """What listing needs to know about a generated order, computed without building it."""

    index: int
    id: int
    created: int
    updated: int
    flags: int


FIRST_NAMES = ["Bob", "Alice", "Maria", "John", "Emma", "Liam", "Olivia", "Noah", "Ava", "Lucas",
               "Sophia", "Mateo", "Mia", "Ethan", "Chloe", "James", "Zoe", "Daniel", "Grace", "Leo"]
LAST_NAMES = ["Norman", "Smith", "Garcia", "Johnson", "Brown", "Miller", "Davis", "Wilson",
              "Taylor", "Anderson", "Thomas", "Moore", "Martin", "Lee", "Clark", "Walker"]
NON_ASCII_NAMES = [("Нікіта", "Шевченко"), ("Дмитрий", "Иванов"), ("太郎", "山田"),
                   ("美咲", "佐藤"), ("José", "Muñoz"), ("Zoë", "Brontë"), ("François", "Lefèvre"),
                   ("Søren", "Kierkegård"), ("Łukasz", "Żółć"), ("Ğül", "Şahin"), ("王", "小明")]
COMPANIES = ["Acme Corp", "Shipping Company", "Globex GmbH", "Initech LLC", "Umbrella Ltd",
             "Société Générale de Test", "ООО Ромашка", "株式会社テスト"]
PLACES = [
    ("Louisville", "Kentucky", "KY", "40202", "United States", "US"),
    ("New York", "New York", "NY", "10001", "United States", "US"),
    ("Austin", "Texas", "TX", "73301", "United States", "US"),
    ("Toronto", "Ontario", "ON", "M5H 2N2", "Canada", "CA"),
    ("Berlin", "Berlin", "BE", "10115", "Germany", "DE"),
    ("Paris", "Paris", "75", "75001", "France", "FR"),
    ("Київ", "Київ", "30", "01001", "Ukraine", "UA"),
    ("東京", "東京都", "JP-13", "100-0001", "Japan", "JP"),
    ("London", "England", "ENG", "EC1A 1BB", "United Kingdom", "GB"),
]
STREETS = ["Chestnut Street", "Main Street", "Elm Avenue", "Oak Road", "Hauptstraße",
           "Rue de Rivoli", "вулиця Хрещатик", "銀座通り"]
PRODUCTS = ["IPod Nano - 8gb", "Snowboard", "T-Shirt", "Coffee Mug", "Шампунь для собак",
            "Wool Socks", "Desk Lamp", "Notebook", "抹茶セット", "Crème Brûlée Kit"]
VARIANTS = ["green", "red", "black", "S", "M", "L", "350 мл / Ваніль-Кокос", None]
PRESENTMENT = [("EUR", Decimal("0.92")), ("CAD", Decimal("1.37")), ("GBP", Decimal("0.79")),
               ("JPY", Decimal("151.30"))]


class Generator:
    """Generates the orders of one shop lazily; see the module docstring."""

    def __init__(self, cfg: ShopConfig) -> None:
        start, end = cfg.resolved_window()
        self.cfg = cfg
        self.mix = cfg.mix
        self.seed = cfg.seed
        self.n = max(0, int(cfg.orders))
        self.start_ts = int(start.timestamp())
        self.end_ts = int(end.timestamp())
        self.span = self.end_ts - self.start_ts
        self.max_delta = max(60, int(self.mix.max_edit_delay_seconds))
        salt = mix(self.seed, 99) % 4000
        self.order_base = 9_100_000_000_000_000 + salt * 1_000_000_000_000
        self.customer_base = 11_000_000_000_000_000 + salt * 1_000_000_000_000
        self.line_base = 15_000_000_000_000_000 + salt * 1_000_000_000_000
        self.pool = max(1, int(self.n * self.mix.repeat_customers / 3))
        self.number_base = 1001
        # Bounded memo: consecutive pages re-read the same look-back window of metas.
        self.meta = lru_cache(maxsize=META_CACHE)(self._meta)  # type: ignore[method-assign]
        self._customer_cached = lru_cache(maxsize=4096)(self._customer)

    # -- ids and timestamps -------------------------------------------------------------
    def order_id(self, i: int) -> int:
        """The id of the ``i``-th order; strictly increasing in ``i``, above 2**53."""
        return self.order_base + i * 1000 + mix(self.seed, i, 11) % 1000

    def index_of(self, order_id: int) -> int | None:
        """The index whose id is ``order_id`` (generated or created later), else None."""
        if order_id < self.order_base:
            return None
        i = (order_id - self.order_base) // 1000
        return i if self.order_id(i) == order_id else None

    def created(self, i: int) -> int:
        """``created_at`` (epoch seconds) of order ``i``: non-decreasing in ``i``."""
        frac = mix(self.seed, i, 1) % 1000
        return self.start_ts + (self.span * (i * 1000 + frac)) // (max(self.n, 1) * 1000)

    def meta(self, i: int) -> Meta:
        """Id, timestamps and flags of order ``i`` (cheap; memoized per instance, bounded)."""
        return self._meta(i)

    def _meta(self, i: int) -> Meta:
        m = self.mix
        a = _fields(mix(self.seed, i, 2))
        b = _fields(mix(self.seed, i, 4))
        flags = 0
        if a[0] < m.cancelled:
            flags |= F_CANCELLED | F_CLOSED
        if a[1] < m.refunded:
            flags |= F_REFUNDED
            if a[2] < m.fully_refunded_share:
                flags |= F_FULL_REFUND
        if a[3] < m.edited or flags & (F_CANCELLED | F_REFUNDED):
            flags |= F_EDITED
        if b[0] < m.test_orders:
            flags |= F_TEST
        if b[1] < m.closed:
            flags |= F_CLOSED
        if b[2] < m.guest_checkouts:
            flags |= F_GUEST
        created = self.created(i)
        updated = created
        if flags & F_EDITED:
            updated = created + 60 + int(b[3] * (self.max_delta - 60))
            updated = max(created, min(updated, self.end_ts))  # never after the window's end
        return Meta(i, self.order_id(i), created, updated, flags)

    def first_index_created_at_or_after(self, ts: int) -> int:
        """Smallest index whose ``created_at`` is >= ``ts`` (``n`` if none)."""
        return bisect_left(range(self.n), ts, key=self.created)

    # -- customers ----------------------------------------------------------------------
    def customer_key(self, i: int, flags: int) -> int | None:
        """Which customer placed order ``i``: a pool key for repeat customers, None for guests."""
        if flags & F_GUEST:
            return None
        h = mix(self.seed, i, 6)
        if (h & 0xFFFF) / 65536.0 < self.mix.repeat_customers:
            return (h >> 16) % self.pool
        return self.pool + i

    def customer(self, key: int) -> dict[str, Any]:
        """The customer with pool key ``key`` (the same for every order of a repeat customer)."""
        c = self._customer_cached(key)
        default = c["default_address"]
        return {**c, "address": dict(c["address"]),
                "default_address": dict(default) if default is not None else None}

    def _customer(self, key: int) -> dict[str, Any]:
        rng = random.Random(mix(self.seed, key, 5))
        first, last = self._person(rng)
        cid = self.customer_base + key * 1000 + mix(self.seed, key, 13) % 1000
        created = self.start_ts - rng.randint(0, 400 * 86400)
        address = self._address(rng, first, last, company=rng.random() < self.mix.with_company)
        r = rng.random()
        default: dict[str, Any] | None = dict(address)
        if r < self.mix.missing_default_address:
            default = None
        elif r < self.mix.missing_default_address + self.mix.default_address_without_names:
            default.update(first_name=None, last_name=None, name="")  # research §4
        return {
            "id": cid,
            "first_name": first,
            "last_name": last,
            "email": f"{_slug(first, last, key)}@example.com",
            "phone": f"+1555{rng.randint(1000000, 9999999)}",
            "created": created,
            "address": address,
            "default_address": default,
        }

    def _person(self, rng: random.Random) -> tuple[str, str]:
        m = self.mix
        r = rng.random()
        if r < m.long_names:
            n = m.long_name_length
            return (("Maximilian" * 40)[:n], ("Wolfeschlegelsteinhausenbergerdorff" * 20)[:n])
        if r < m.long_names + m.non_ascii_names:
            return rng.choice(NON_ASCII_NAMES)
        return rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)

    def _address(
        self, rng: random.Random, first: str, last: str, company: bool
    ) -> dict[str, Any]:
        city, province, pcode, zipc, country, ccode = rng.choice(PLACES)
        street = rng.choice(STREETS)
        address1 = f"{street} {rng.randint(1, 999)}"
        if len(first) >= self.mix.long_name_length:
            address1 = (address1 + " ") * (self.mix.long_name_length // len(address1) + 1)
            address1 = address1[: self.mix.long_name_length]
        return {
            "first_name": first,
            "address1": address1,
            "phone": f"555-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}",
            "city": city,
            "zip": zipc,
            "province": province,
            "country": country,
            "last_name": last,
            "address2": rng.choice(["", "", f"Apt {rng.randint(1, 99)}"]),
            "company": rng.choice(COMPANIES) if company else None,
            "latitude": round(rng.uniform(-60, 60), 5),
            "longitude": round(rng.uniform(-120, 120), 5),
            "name": f"{first} {last}".strip(),
            "country_code": ccode,
            "province_code": pcode,
        }

    # -- full order ---------------------------------------------------------------------
    def order(self, i: int) -> dict[str, Any]:
        """The full internal record of order ``i`` (rendered by :mod:`.render`)."""
        meta = self.meta(i)
        rng = random.Random(mix(self.seed, i, 3))
        key = self.customer_key(i, meta.flags)
        customer = self.customer(key) if key is not None else None
        if customer is not None:
            first, last = customer["first_name"], customer["last_name"]
            email, phone = customer["email"], customer["phone"]
            billing = dict(customer["address"])
        else:
            first, last = self._person(rng)
            email = f"guest.{meta.id}@example.net"
            phone = None
            billing = self._address(rng, first, last, rng.random() < self.mix.with_company)
        shipping = dict(billing) if rng.random() < 0.8 else self._address(rng, first, last, False)
        lines = self._line_items(rng, meta.id, i)
        presentment, rate = self.cfg.currency, Decimal(1)
        if rng.random() < self.mix.presentment_currency_differs:
            presentment, rate = rng.choice(PRESENTMENT)
            if presentment == self.cfg.currency:
                presentment, rate = "EUR", Decimal("0.92")
        rec: dict[str, Any] = {
            "index": i,
            "id": meta.id,
            "number": i + 1,
            "order_number": self.number_base + i,
            "created": meta.created,
            "updated": meta.updated,
            "processed": meta.created,
            "cancelled": None,
            "cancel_reason": None,
            "closed": None,
            "test": bool(meta.flags & F_TEST),
            "email": email,
            "phone": phone,
            "currency": self.cfg.currency,
            "presentment_currency": presentment,
            "rate": rate,
            "customer": customer,
            "billing": billing,
            "shipping": shipping,
            "line_items": lines,
            "tax_rate": Decimal("0.08"),
            "shipping_price": rng.choice([Decimal("0.00"), Decimal("9.99")]),
            "base_financial_status": rng.choice(["paid"] * 8 + ["pending", "authorized"]),
            "fulfilled": False,
            "refunds": [],
            "note": None,
            "token": f"{mix(self.seed, i, 21):016x}{mix(self.seed, i, 22):016x}",
        }
        self._apply_lifecycle(rec, meta, rng)
        return rec

    def _line_items(self, rng: random.Random, order_id: int, i: int) -> list[dict[str, Any]]:
        lines = []
        for k in range(rng.randint(1, 4)):
            p = rng.randrange(len(PRODUCTS) * 20)
            title = PRODUCTS[p % len(PRODUCTS)]
            variant = VARIANTS[p % len(VARIANTS)]
            custom = rng.random() < 0.03
            lines.append({
                "id": self.line_base + i * 8 + k,
                "title": title,
                "variant_title": variant,
                "name": f"{title} - {variant}" if variant else title,
                "quantity": rng.randint(1, 3),
                "price": (Decimal(rng.randint(500, 50000)) / 100).quantize(CENT),
                "sku": None if custom else f"SKU-{p:05d}",
                "product_id": None if custom else 632910000 + p,
                "variant_id": None if custom else 39072000 + p,
            })
        return lines

    def _apply_lifecycle(self, rec: dict[str, Any], meta: Meta, rng: random.Random) -> None:
        """Cancellation, refunds and closing, all at or before ``updated_at``."""
        flags = meta.flags
        if flags & F_REFUNDED:
            total = order_total(rec)
            if flags & F_FULL_REFUND:
                amount = total
            else:
                amount = (total * Decimal(rng.randint(10, 60)) / 100).quantize(CENT)
            rec["refunds"].append({
                "id": meta.id + 7,
                "created": meta.updated,
                "note": "Refund",
                "amount": amount,
                "restock": True,
            })
        if flags & F_CANCELLED:
            rec["cancelled"] = meta.updated
            reasons = ["customer", "inventory", "fraud", "declined", "other"]
            rec["cancel_reason"] = rng.choice(reasons)
        if flags & F_CLOSED:
            rec["closed"] = meta.updated
            rec["fulfilled"] = not flags & F_CANCELLED


def order_subtotal(rec: dict[str, Any]) -> Decimal:
    """Sum of line prices × quantities."""
    return sum((li["price"] * li["quantity"] for li in rec["line_items"]), Decimal("0.00"))


def order_tax(rec: dict[str, Any]) -> Decimal:
    """Tax on the subtotal at the order's rate."""
    return (order_subtotal(rec) * rec["tax_rate"]).quantize(CENT)


def order_total(rec: dict[str, Any]) -> Decimal:
    """Original total: subtotal + tax + shipping."""
    if "total_override" in rec:
        return Decimal(rec["total_override"])
    return (order_subtotal(rec) + order_tax(rec) + rec["shipping_price"]).quantize(CENT)


def order_refunded(rec: dict[str, Any]) -> Decimal:
    """Total refunded so far."""
    return sum((r["amount"] for r in rec["refunds"]), Decimal("0.00"))


def _slug(first: str, last: str, key: int) -> str:
    text = f"{first}.{last}".lower()
    if not text.isascii() or len(text) > 40:
        return f"customer.{key}"
    return f"{text}{key}".replace(" ", "")
