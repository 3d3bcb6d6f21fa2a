"""Seeded, vectorised simulator of a mid-sized distributor that writes daily landing files.

Pure Python + numpy + polars (no Dagster import). ``simulate(config)`` builds everything in
memory; ``write_landing_files(data, landing_dir)`` writes one file per source and day;
``generate_demo_data(config, landing_dir)`` does both. The same config (seed included) gives
byte-identical files. All randomness comes from ``numpy.random.Generator(PCG64(...))`` streams
derived from ``config.seed`` (one independent stream per sub-model, so e.g. the weather does not
change when the order volume does).

Landing layout (``landing_dir/<source>/<source>_YYYY-MM-DD.<ext>``; the date is the delivery /
partition day; every file is written to a hidden temporary file and then ``os.replace``-d into place):

=============  =====  ==========================================================================
source         ext    rows in the file of day D
=============  =====  ==========================================================================
transactions   csv    order lines ordered on D
deliveries     csv    order lines whose delivery was *reported* on D (delivered_date, or the day
                      after for ~25% of lines: ERP lag); reports after the window are absent
telemetry      jsonl  one tracker reading per shipment (= order) dispatched on D (order day + 1)
tickets        jsonl  support tickets created on D
holidays       csv    all holidays with holiday_date in [D, D+13], published on D
weather        csv    one row per region observed on D
overrides      csv    operators' overrides of the late-delivery prediction made on D (~3% of the
                      order lines dispatched on D, i.e. ordered on D-1), with a reason
service_usage  jsonl  departments' calls of the factory's services on D (caller, service, rows,
                      latency, outcome), as the services' usage log delivers them
=============  =====  ==========================================================================

CSV files always exist (header only when empty); a JSONL file is skipped on a day without
records (a stale one from an earlier run is removed). Timestamps ``YYYY-MM-DDTHH:MM:SS`` (no
zone), dates ``YYYY-MM-DD``, booleans ``true``/``false``.

Hidden ground truth (kept in ``SimulatedData`` truth frames, never in the landing files)
------------------------------------------------------------------------------------------
Entities: ``n_suppliers`` suppliers ``S001..``; ``n_products`` products ``P0001..`` (one supplier
each, list price log-normal, popularity, mean line quantity, yearly amplitude/phase);
``n_warehouses`` warehouses ``W01..`` (warehouse i serves region ``REGIONS[(i-1) % 5]``, capacity
~ its expected weekday volume x 0.95); customers ``C00001..`` (region, home warehouse, preferred
channel, order-size factor, latent purchase rate). Default ``n_customers`` =
``max(500, 2 * order_lines_per_day)``.

Late delivery (``delivered_date > promised_date``), per order line::

    score = -3.1 + 8.0 * (r_ref - reliability[supplier])      # Beta-mixture per supplier
                  + 2.5 * (load[warehouse, day] - 1)          # lines at warehouse / capacity (clipped 0..3)
                  + 1.6 * storm_in_transit                    # storm in customer region, day+1..promised
                  + 1.0 * holiday_in_window                   # holiday in customer region, day+1..promised
                  + 0.5 * min(delay_events, 6)                # telemetry of the order's shipment
    late_probability = sigmoid(score)

``r_ref`` is the popularity-weighted mean base reliability (``truth["late_model"]
["reliability_ref"]``, ~0.8), which keeps the overall late rate stable across seeds. Suppliers:
a quarter are unreliable (Beta(3, 2.5)), the rest Beta(16, 2); S003 is always a good one.

``delay_events ~ Poisson(g * (0.25 + 2.2 * storm on order/dispatch day in region + 3 * max(load -
0.9, 0)))`` with ``g ~ Gamma(2, 0.5)`` per shipment. Overall late rate ~15-25% (higher in
winter and in the Q4 peak); the true probability has AUC ~0.88-0.92, and a logistic regression on
observable features (supplier, the warehouse's line count that day, storms and holidays between
order day + 1 and the promised date, delay_events) gets > 0.85. Late lines arrive 1-6 days after promise
(mostly 1-2); on-time lines on the promised day or a little earlier (never before dispatch).
Promised date = order day + lead, lead = supplier lead (2-3) + 1 if shipped from another
region's warehouse + 1 with p=0.3, clipped to 2..5. ~1% of lines are short-delivered.

Demand: orders per day ~ Poisson(lines_per_day / 2.5 * weekly[dow] * yearly(day) * holiday
share * LogNormal(0, 0.05)); weekly factors Mon..Sun 1.12, 1.15, 1.12, 1.08, 1.00, 0.50, 0.38
(normalised to mean 1), yearly ``1 + 0.12 cos(2 pi (doy - 330) / 365.25)`` (peak late Nov).
Lines per order ``1 + Poisson(1.5)`` (max 20). Each line's product is drawn with weight
``popularity * (1 + amp_p sin(2 pi doy / 365.25 + phase_p)) * promo_lift * LogNormal(0, 0.15)``.
Promotions: per product, windows of 5-14 days every 20-90 days, discount 0.10-0.30,
``promo_lift = 1 + 4 * discount`` (~x1.8) and line quantity x1.25; ``discount_pct`` is set on
every line of the product during its promotion. Quantity = ``1 + Poisson((qmean_p - 1) * size_c
* promo)`` clipped to 1..20. A customer's region on a holiday orders at x0.4. Orders ship from
the customer's home warehouse (90%) or another one; channel = preferred channel (85%).

Customers: ``log rate_c(t) = log base_c + walk_c(t) + log churn_c(t)`` with ``log base_c ~
N(0, 1.6)``, ``walk`` an AR(1) random walk (phi 0.985, step sd 0.07, stationary sd ~0.4) and
the day's orders assigned to customers in proportion to ``rate_c`` (``customer_daily_rate`` holds
the expected orders per day). Tickets: an order with a late line raises a ticket with
probability ``min(0.02 + 0.012 * days_late, 0.12)`` (65% negative, 35% "where is my order?"
neutral), created between the promised and the delivered date; on-time orders get a positive
ticket with p=0.8% and a negative one (damaged / wrong item) with p=0.3%, created on delivery (+0..2
days); plus neutral questions (~0.1% of customers a day, half about their last order).
Every negative ticket multiplies that customer's rate by 0.4 from the next day on, persistently
(floor 0.16). So recency, frequency, monetary value and ticket sentiment predict "buys in the
next 30 days".

Weather: per region, yearly temperature cycle (coldest ~20 Jan) + AR(1) noise; storms are a
Markov chain (start ~2.8% a day, more in winter; 35% chance to continue) -> ~4% of region-days;
storm days have 15+ mm precipitation. Holidays: New Year's Day, Easter Monday, Labour Day,
Christmas Day, Boxing Day in all regions, plus 3 regional holidays per region and year (stable
per seed and year).

Overrides: operators review shipments on the dispatch day (order day + 1) and override ~3% of
the order lines (``_OVERRIDE["share"]``; only lines dispatched inside the window). Their label
(``override_label``, true = "will be late") equals the line's true ``is_late`` with probability
0.85 (good but imperfect information); the reason is drawn from carrier_reported_delay,
customer_called, warehouse_backlog when the label is true, from stock_confirmed, route_clear when
it is false. ``use_case`` is always late_delivery and ``entity_id`` the order line id
(``order_id-line_number``). Operators ``OP01..OP12``.

Drift (``config.drift``, from ``drift.start_date``): the degraded supplier's reliability becomes
``degraded_reliability``; ``new_channel`` takes ~15% of orders and ships through a third-party
carrier (``new_channel_late_shift`` added to the late score of its lines: a concept drift that a
model trained before the drift cannot see, since the channel did not exist); list prices x
``price_shift``.

``SimulatedData`` truth: ``line_truth`` (row-aligned with ``transactions``: late_probability,
late_score, is_late, features, delivered/report dates), ``customer_truth``, ``supplier_truth``,
``product_truth``, ``warehouse_truth``, ``promotions``, ``ticket_truth`` (sentiment, kind),
``override_truth`` (is_late, label_correct), ``holiday_calendar``, ``customer_daily_rate`` (days x
customers) and the ``truth`` dict of parameters.
"""

from __future__ import annotations

import datetime
import math
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from factory_assets.lib.files import atomic_write

__all__ = [
    "COLUMNS",
    "EXTENSIONS",
    "REGIONS",
    "SOURCES",
    "DriftScenario",
    "SimulatedData",
    "SimulationConfig",
    "generate_demo_data",
    "simulate",
    "ticket_triage",
    "write_landing_files",
]

# --------------------------------------------------------------------------------------------
# Public constants: landing layout
# --------------------------------------------------------------------------------------------

SOURCES: tuple[str, ...] = ("transactions", "deliveries", "telemetry", "tickets", "holidays", "weather", "overrides",
                            "service_usage")
EXTENSIONS: dict[str, str] = {
    "transactions": "csv",
    "deliveries": "csv",
    "telemetry": "jsonl",
    "tickets": "jsonl",
    "holidays": "csv",
    "weather": "csv",
    "overrides": "csv",
    "service_usage": "jsonl",
}
COLUMNS: dict[str, tuple[str, ...]] = {
    "transactions": (
        "order_id", "line_number", "ordered_at", "customer_id", "customer_name", "customer_email",
        "region", "product_id", "warehouse_id", "supplier_id", "quantity", "unit_price",
        "discount_pct", "promised_date", "channel",
    ),
    "deliveries": ("order_id", "line_number", "delivered_date", "quantity_delivered"),
    "telemetry": (
        "event_id", "shipment_id", "order_id", "recorded_at", "region", "temperature_c", "delay_events",
    ),
    "tickets": (
        "ticket_id", "created_at", "customer_id", "customer_email", "order_id", "contact_channel",
        "subject", "body",
    ),
    "holidays": ("published_date", "holiday_date", "region", "holiday_name"),
    "weather": ("weather_date", "region", "temperature_c", "precipitation_mm", "storm"),
    "overrides": ("override_id", "created_at", "use_case", "entity_id", "operator_id", "override_label", "reason"),
    "service_usage": ("called_at", "caller", "service", "service_version", "channel", "rows", "latency_ms", "status",
                      "error"),
}

REGIONS: tuple[str, ...] = ("north", "south", "east", "west", "central")
CHANNELS: tuple[str, ...] = ("web", "phone", "edi", "store")
CONTACT_CHANNELS: tuple[str, ...] = ("email", "phone", "chat")
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S"
DATE_FORMAT = "%Y-%m-%d"

# --------------------------------------------------------------------------------------------
# Hidden model parameters (documented in the module docstring, exported in SimulatedData.truth)
# --------------------------------------------------------------------------------------------

_REGION_WEIGHTS = np.array([0.24, 0.20, 0.20, 0.18, 0.18])
_REGION_TEMP_BASE = np.array([5.0, 15.0, 9.0, 11.0, 10.0])
_REGION_TEMP_AMP = np.array([10.0, 8.0, 11.0, 8.0, 10.0])
_CHANNEL_WEIGHTS = np.array([0.45, 0.20, 0.20, 0.15])
_WEEKLY = np.array([1.12, 1.15, 1.12, 1.08, 1.00, 0.50, 0.38])
_WEEKLY = _WEEKLY / _WEEKLY.mean()
_YEARLY_AMP, _YEARLY_PEAK_DOY = 0.12, 330
_MEAN_EXTRA_LINES = 1.5  # lines per order = 1 + Poisson(1.5)
_MAX_LINES = 20
_MAX_QTY = 20
_HOLIDAY_DEMAND = 0.4
_HOME_WAREHOUSE_P = 0.9
_PREFERRED_CHANNEL_P = 0.85
_NEW_CHANNEL_SHARE = 0.15
_CAPACITY_FACTOR = 0.95  # capacity = expected weekday volume x this
_PROMO_DISCOUNTS = np.array([0.10, 0.15, 0.20, 0.25, 0.30])
_PROMO_LIFT_PER_DISCOUNT = 4.0
_PROMO_QTY = 1.25
_LATE = {
    "intercept": -3.1,
    "unreliability": 8.0,  # x (reliability_ref - reliability)
    "load": 2.5,  # x (load - 1)
    "storm_in_transit": 1.6,
    "holiday_in_window": 1.0,
    "delay_events": 0.5,  # x min(delay_events, 6)
    "delay_cap": 6,
}
_DELAY = {"base": 0.25, "storm": 2.2, "load": 3.0, "load_ref": 0.9, "gamma_shape": 2.0}
_ERP_LAG_P = 0.25
_SHORT_DELIVERY_P = 0.01
_WALK_PHI, _WALK_SD = 0.985, 0.07
_BASE_RATE_SD = 1.6
_CHURN_FACTOR, _CHURN_FLOOR = 0.4, 0.16
_TICKET = {
    "late_base": 0.02,
    "late_per_day": 0.012,
    "late_max": 0.12,
    "late_negative_share": 0.65,
    "positive_p": 0.008,
    "damaged_p": 0.003,
    "question_per_customer_day": 0.001,
}
_OVERRIDE = {
    "share": 0.03,  # of the order lines dispatched inside the window
    "label_accuracy": 0.85,  # P(operator label == true is_late)
    "operators": 12,
    "reasons_late": ("carrier_reported_delay", "customer_called", "warehouse_backlog"),
    "reasons_on_time": ("stock_confirmed", "route_clear"),
}
_MARGIN = 24  # days simulated past the window (weather, holidays, deliveries)

_FIRST_NAMES = (
    "james", "mary", "john", "patricia", "robert", "jennifer", "michael", "linda", "william",
    "elizabeth", "david", "barbara", "richard", "susan", "joseph", "jessica", "thomas", "sarah",
    "charles", "karen", "daniel", "nancy", "matthew", "lisa", "anthony", "betty", "mark", "sandra",
    "paul", "ashley", "steven", "emily", "andrew", "donna", "joshua", "michelle", "kevin", "carol",
    "brian", "amanda", "lukas", "anna", "jonas", "lea", "noah", "mia", "elias", "emma",
)
_LAST_NAMES = (
    "smith", "johnson", "williams", "brown", "jones", "garcia", "miller", "davis", "rodriguez",
    "martinez", "hernandez", "lopez", "gonzalez", "wilson", "anderson", "thomas", "taylor", "moore",
    "jackson", "martin", "lee", "perez", "thompson", "white", "harris", "sanchez", "clark", "ramirez",
    "lewis", "robinson", "walker", "young", "allen", "king", "wright", "scott", "muller", "schmidt",
    "schneider", "fischer", "weber", "meyer", "wagner", "becker", "schulz", "hoffmann",
)

# Ticket text templates. Kind codes: 0 late complaint, 1 where-is-my-order, 2 damaged/wrong item,
# 3 praise, 4 general question. Sentiment: 0 negative, 1 neutral, 2 positive.
_KIND_SENTIMENT = np.array([0, 1, 0, 2, 1])
_SENTIMENTS = ("negative", "neutral", "positive")
_KINDS = ("late_delivery", "where_is_my_order", "damaged_or_wrong", "praise", "question")
_SUBJECTS: dict[int, tuple[str, ...]] = {
    0: ("Late delivery", "Complaint: delivery late again", "Very disappointed with my order",
        "Terrible delivery service"),
    1: ("Where is my order?", "Delivery status question", "Has my order shipped?"),
    2: ("Damaged goods received", "Wrong item delivered", "Complaint about my delivery"),
    3: ("Thank you", "Great service", "Quick delivery, thanks"),
    4: ("Invoice question", "Change of address", "Question about delivery options",
        "Question about my account"),
}
_OPENINGS: dict[int, tuple[str, ...]] = {
    0: ("My delivery is late again and I am really disappointed.",
        "I am angry: the goods did not arrive on the promised date.",
        "This is terrible service, my order is days late.",
        "Once again the delivery came late and nobody told me."),
    1: ("Could you tell me where my order is?",
        "My order has not arrived yet, can you check the status?",
        "The promised delivery date has passed, when will the goods arrive?"),
    2: ("The package arrived damaged and I am very disappointed.",
        "I received the wrong item, this is terrible.",
        "Half of the goods were broken when they arrived, I am angry."),
    3: ("Thanks for the quick delivery!",
        "Great service, everything arrived in excellent condition.",
        "I am very happy with my last order."),
    4: ("Could you send me a copy of my last invoice?",
        "Is it possible to change the delivery address for future orders?",
        "Do you offer delivery on Saturdays?",
        "How can I update the e-mail address on my account?"),
}
_MIDDLES: dict[int, tuple[str, ...]] = {
    0: ("My own customers are waiting and I look unreliable because of you.",
        "Nobody answered when I called the hotline.",
        "This is the second time this month."),
    1: ("The tracking page shows no update.", "I need the goods for a job next week.",
        "Is there a new delivery date?"),
    2: ("I expect a replacement at no cost.", "Nobody checked the shipment before it left.",
        "Please arrange a pickup."),
    3: ("The driver was friendly and on time.", "Your team was quick and helpful.",
        "Everything was exactly as ordered."),
    4: ("What information do you need from me?", "Is there a form I should fill in?",
        "Can you let me know the next steps?"),
}
_CLOSINGS: dict[int, tuple[str, ...]] = {
    0: ("If this happens again I will cancel my account.", "Never again, unless this is fixed.",
        "I am thinking about moving to another supplier and cancel all open orders."),
    1: ("Please let me know as soon as possible?", "Can you call me back?",
        "When can I expect it?"),
    2: ("Very disappointed, I may cancel future orders.", "Never again if this is not resolved.",
        "Terrible experience overall."),
    3: ("Thanks again, great job!", "Keep up the excellent work.", "Happy to order again soon."),
    4: ("Thanks in advance for your answer?", "Could you reply by e-mail?", "Can you help?"),
}
_SIGNOFFS = ("Regards, ", "Best, ", "Kind regards, ", "Thanks, ")


# --------------------------------------------------------------------------------------------
# Config and result types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DriftScenario:
    """A change in the world from ``start_date`` on (for drift detection demos)."""

    start_date: datetime.date
    degraded_supplier_id: str = "S003"  # reliability drops sharply from start_date
    degraded_reliability: float = 0.35
    new_channel: str = "marketplace"  # appears from start_date with ~15% share
    new_channel_late_shift: float = 3.0  # its third-party carrier: + this to the late score of its lines
    price_shift: float = 1.15  # unit prices multiplied from start_date


@dataclass(frozen=True)
class SimulationConfig:
    start_date: datetime.date = date(2025, 1, 1)
    days: int = 90
    order_lines_per_day: int = 2000  # mean; actual varies with weekly/yearly seasonality
    seed: int = 42
    n_customers: int | None = None  # default: max(500, 2 * order_lines_per_day)
    n_products: int = 200
    n_suppliers: int = 20
    n_warehouses: int = 8
    drift: DriftScenario | None = None

    @property
    def customers(self) -> int:
        return self.n_customers if self.n_customers is not None else max(500, 2 * self.order_lines_per_day)

    @property
    def end_date(self) -> datetime.date:
        """Last day of the window (inclusive)."""
        return self.start_date + datetime.timedelta(days=self.days - 1)

    def window(self) -> list[datetime.date]:
        return [self.start_date + datetime.timedelta(days=i) for i in range(self.days)]


@dataclass
class SimulatedData:
    """Everything the simulator produced.

    The landing frames (``transactions`` ... ``service_usage``, ``SOURCES``) have exactly the landing columns
    (``COLUMNS``), are sorted by partition day, and ``partition_day[source]`` gives each row's
    file day as an offset from ``config.start_date``. The other frames are hidden ground truth.
    """

    config: SimulationConfig
    transactions: pl.DataFrame
    deliveries: pl.DataFrame
    telemetry: pl.DataFrame
    tickets: pl.DataFrame
    holidays: pl.DataFrame
    weather: pl.DataFrame
    overrides: pl.DataFrame
    service_usage: pl.DataFrame
    partition_day: dict[str, np.ndarray]
    #: row-aligned with ``transactions``: late_probability, is_late, delivered_date, report_date, ...
    line_truth: pl.DataFrame
    #: one row per customer: latent rate, churn multiplier, negative tickets, ...
    customer_truth: pl.DataFrame
    supplier_truth: pl.DataFrame
    product_truth: pl.DataFrame
    warehouse_truth: pl.DataFrame
    promotions: pl.DataFrame
    #: row-aligned with ``tickets``: sentiment, kind
    ticket_truth: pl.DataFrame
    #: row-aligned with ``overrides``: the line's true is_late and whether the operator's label matches it
    override_truth: pl.DataFrame
    #: every holiday in the simulated range (not the published view)
    holiday_calendar: pl.DataFrame
    #: expected orders per day, shape (days, n_customers), customers in customer_truth order
    customer_daily_rate: np.ndarray
    truth: dict[str, Any] = field(default_factory=dict)

    def landing_frames(self) -> dict[str, pl.DataFrame]:
        return {s: getattr(self, s) for s in SOURCES}


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _rngs(seed: int, names: tuple[str, ...]) -> dict[str, np.random.Generator]:
    children = np.random.SeedSequence(seed).spawn(len(names))
    return {n: np.random.Generator(np.random.PCG64(c)) for n, c in zip(names, children)}


def _ids(prefix: str, nums: np.ndarray, width: int) -> pl.Series:
    s = pl.Series("x", np.asarray(nums, dtype=np.int64)).cast(pl.String).str.zfill(width)
    return pl.select((pl.lit(prefix) + s).alias("x")).to_series()


def _dates(epoch_day0: int, offsets: np.ndarray) -> pl.Series:
    return pl.Series("x", (np.asarray(offsets, dtype=np.int64) + epoch_day0).astype(np.int32)).cast(pl.Date)


def _timestamps(epoch_day0: int, offsets: np.ndarray, seconds: np.ndarray) -> pl.Series:
    us = ((np.asarray(offsets, dtype=np.int64) + epoch_day0) * 86400 + np.asarray(seconds, dtype=np.int64)) * 1_000_000
    return pl.Series("x", us).cast(pl.Datetime("us"))


def _gather(values: list[str] | tuple[str, ...] | pl.Series, idx: np.ndarray) -> pl.Series:
    s = values if isinstance(values, pl.Series) else pl.Series("x", list(values), dtype=pl.String)
    return s.gather(np.asarray(idx, dtype=np.int64))


def _easter(year: int) -> date:
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    l_ = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l_) // 451
    month = (h + l_ - 7 * m + 114) // 31
    day = (h + l_ - 7 * m + 114) % 31 + 1
    return date(year, month, day)


def _holiday_calendar(seed: int, years: range) -> list[tuple[date, int, str]]:
    """(date, region index, name) for every holiday in the given years; stable per seed+year."""
    out: list[tuple[date, int, str]] = []
    for year in years:
        national = [
            (date(year, 1, 1), "New Year's Day"),
            (_easter(year) + datetime.timedelta(days=1), "Easter Monday"),
            (date(year, 5, 1), "Labour Day"),
            (date(year, 12, 25), "Christmas Day"),
            (date(year, 12, 26), "Boxing Day"),
        ]
        taken = {d for d, _ in national}
        for d, name in national:
            out.extend((d, r, name) for r in range(len(REGIONS)))
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 7919, year])))
        n_days = (date(year + 1, 1, 1) - date(year, 1, 1)).days
        candidates = np.array(
            [i for i in range(3, n_days - 7) if date(year, 1, 1) + datetime.timedelta(days=i) not in taken]
        )
        for r, region in enumerate(REGIONS):
            picks = np.sort(rng.choice(candidates, size=3, replace=False))
            for j, name in enumerate(("Founders' Day", "Harvest Festival", "Patron Saint's Day")):
                out.append((date(year, 1, 1) + datetime.timedelta(days=int(picks[j])), r, f"{region.title()} {name}"))
    return out


def _validate(config: SimulationConfig) -> None:
    if config.days < 1:
        raise ValueError("days must be >= 1")
    if config.order_lines_per_day < 0:
        raise ValueError("order_lines_per_day must be >= 0")
    if config.customers < 1 or config.n_products < 1 or config.n_suppliers < 1:
        raise ValueError("n_customers, n_products and n_suppliers must be >= 1")
    if not 1 <= config.n_warehouses <= 99:
        raise ValueError("n_warehouses must be in 1..99")
    if config.n_suppliers > 999 or config.n_products > 9999:
        raise ValueError("at most 999 suppliers and 9999 products")
    if config.drift is not None:
        d = config.drift
        sid = d.degraded_supplier_id
        if not (sid.startswith("S") and sid[1:].isdigit() and 1 <= int(sid[1:]) <= config.n_suppliers):
            raise ValueError(f"drift.degraded_supplier_id {sid!r} is not one of S001..S{config.n_suppliers:03d}")
        if not 0.0 < d.degraded_reliability <= 1.0:
            raise ValueError("drift.degraded_reliability must be in (0, 1]")
        if d.new_channel in CHANNELS:
            raise ValueError(f"drift.new_channel must be a new channel, not one of {CHANNELS}")
        if d.price_shift <= 0:
            raise ValueError("drift.price_shift must be > 0")


# --------------------------------------------------------------------------------------------
# Simulation
# --------------------------------------------------------------------------------------------


def simulate(config: SimulationConfig) -> SimulatedData:
    """Simulate the distributor for ``config.days`` days; everything stays in memory."""
    _validate(config)
    # a new stream goes at the end: SeedSequence children are numbered, so the others stay the same
    rng = _rngs(config.seed, ("entities", "weather", "promos", "customers", "orders", "tickets", "texts", "operators"))
    T = config.days
    TX = T + _MARGIN  # extended horizon (weather, holidays, deliveries after the window)
    epoch0 = (config.start_date - date(1970, 1, 1)).days
    n_c, n_p, n_s, n_w, n_r = config.customers, config.n_products, config.n_suppliers, config.n_warehouses, len(REGIONS)

    day_dt = np.datetime64(config.start_date.isoformat(), "D") + np.arange(TX)
    doy = (day_dt - day_dt.astype("datetime64[Y]").astype("datetime64[D]")).astype(np.int64) + 1
    dow = (day_dt.astype(np.int64) + 3) % 7  # 0 = Monday

    drift = config.drift
    drift_t = (drift.start_date - config.start_date).days if drift is not None else None

    # ---- suppliers, products, warehouses ---------------------------------------------------
    er = rng["entities"]
    # a quarter of the suppliers (at least one when there are two or more) are unreliable; S003,
    # the default degraded supplier of the drift scenario, is always a good one so that its drift
    # is visible
    candidates = np.array([i for i in range(n_s) if i != 2 or n_s < 3])
    n_bad = min(max(round(0.25 * n_s), 1 if n_s >= 2 else 0), candidates.size)
    bad = np.zeros(n_s, dtype=bool)
    bad[er.choice(candidates, size=n_bad, replace=False)] = True
    reliability = np.where(bad, er.beta(3.0, 2.5, n_s), er.beta(16.0, 2.0, n_s))
    sup_lead = er.integers(2, 4, n_s)

    prod_sup = np.concatenate([er.permutation(n_s)[: min(n_s, n_p)], er.integers(0, n_s, max(0, n_p - n_s))])
    prod_sup = er.permutation(prod_sup)
    popularity = er.lognormal(0.0, 0.8, n_p)
    base_price = np.round(np.clip(er.lognormal(3.2, 0.7, n_p), 1.0, 2000.0), 2)
    qty_mean = er.uniform(1.5, 6.0, n_p)
    season_amp = er.uniform(0.05, 0.5, n_p)
    season_phase = er.uniform(0.0, 2 * np.pi, n_p)

    wh_region = np.arange(n_w) % n_r
    rel_ref = float(np.sum(popularity * reliability[prod_sup]) / np.sum(popularity))

    # ---- customers -------------------------------------------------------------------------
    cr = rng["customers"]
    cust_region = cr.choice(n_r, size=n_c, p=_REGION_WEIGHTS)
    home_wh = np.empty(n_c, dtype=np.int64)
    for r in range(n_r):
        mask = cust_region == r
        options = np.flatnonzero(wh_region == r)
        if options.size == 0:
            options = np.arange(n_w)
        home_wh[mask] = options[cr.integers(0, options.size, mask.sum())]
    first_idx = cr.integers(0, len(_FIRST_NAMES), n_c)
    last_idx = cr.integers(0, len(_LAST_NAMES), n_c)
    pref_channel = cr.choice(len(CHANNELS), size=n_c, p=_CHANNEL_WEIGHTS)
    z_rate = cr.standard_normal(n_c)
    log_base = _BASE_RATE_SD * z_rate
    size_factor = np.exp(0.25 * z_rate + 0.35 * cr.standard_normal(n_c))
    walk = cr.normal(0.0, _WALK_SD / math.sqrt(1 - _WALK_PHI**2), n_c)
    churn_log = np.zeros(n_c)

    base_share = np.exp(log_base) / np.exp(log_base).sum()
    wh_share = _HOME_WAREHOUSE_P * np.bincount(home_wh, weights=base_share, minlength=n_w) + (1 - _HOME_WAREHOUSE_P) / n_w
    weekday_level = _WEEKLY[:5].mean()
    capacity = np.maximum(
        config.order_lines_per_day * wh_share * weekday_level * _CAPACITY_FACTOR * er.uniform(0.9, 1.1, n_w), 1.0
    )

    # ---- weather (extended horizon) ---------------------------------------------------------
    wr = rng["weather"]
    winter = np.cos(2 * np.pi * (doy - 20) / 365.25)
    temp = _REGION_TEMP_BASE[None, :] - _REGION_TEMP_AMP[None, :] * winter[:, None]
    noise = np.empty((TX, n_r))
    eps = wr.normal(0.0, 2.5, (TX, n_r))
    noise[0] = eps[0] / math.sqrt(1 - 0.7**2)
    storm = np.zeros((TX, n_r), dtype=bool)
    p_start = 0.028 * (1 + 0.6 * winter)
    u = wr.random((TX, n_r))
    storm[0] = u[0] < p_start[0] * 1.5
    for t in range(1, TX):
        noise[t] = 0.7 * noise[t - 1] + eps[t]
        storm[t] = np.where(storm[t - 1], u[t] < 0.35, u[t] < p_start[t])
    temp = np.round(temp + noise, 1) + 0.0
    rainy = wr.random((TX, n_r)) < (0.4 + 0.1 * winter[:, None])
    precip = np.where(storm, 15.0 + wr.gamma(2.0, 10.0, (TX, n_r)), np.where(rainy, wr.gamma(0.8, 5.0, (TX, n_r)), 0.0))
    precip = np.round(precip, 1) + 0.0
    storm_cum = np.vstack([np.zeros((1, n_r), dtype=np.int64), np.cumsum(storm, axis=0)])

    # ---- holidays ---------------------------------------------------------------------------
    last_day = config.start_date + datetime.timedelta(days=TX - 1)
    cal = _holiday_calendar(config.seed, range(config.start_date.year, last_day.year + 1))
    cal = [(d, r, n) for d, r, n in cal if config.start_date <= d <= last_day]
    cal.sort(key=lambda x: (x[0], x[1]))
    hol_t = np.array([(d - config.start_date).days for d, _, _ in cal], dtype=np.int64)
    hol_r = np.array([r for _, r, _ in cal], dtype=np.int64)
    hol_name = [n for _, _, n in cal]
    holiday = np.zeros((TX, n_r), dtype=bool)
    holiday[hol_t, hol_r] = True
    hol_cum = np.vstack([np.zeros((1, n_r), dtype=np.int64), np.cumsum(holiday, axis=0)])

    # ---- promotions -------------------------------------------------------------------------
    pr = rng["promos"]
    promo_disc = np.zeros((TX, n_p))
    promo_rows: list[tuple[int, int, int, float]] = []
    for p in range(n_p):
        t = -int(pr.integers(0, 60))
        while True:
            t += int(pr.integers(20, 91))
            if t >= TX:
                break
            length = int(pr.integers(5, 15))
            disc = float(pr.choice(_PROMO_DISCOUNTS))
            lo, hi = max(t, 0), min(t + length, TX)
            if hi > lo:
                promo_disc[lo:hi, p] = disc
                promo_rows.append((p, t, t + length - 1, disc))
            t += length
    promo_lift = 1.0 + _PROMO_LIFT_PER_DISCOUNT * promo_disc

    yearly = 1.0 + _YEARLY_AMP * np.cos(2 * np.pi * (doy - _YEARLY_PEAK_DOY) / 365.25)
    prod_season = 1.0 + season_amp[None, :] * np.sin(2 * np.pi * doy[:, None] / 365.25 + season_phase[None, :])

    # ---- day loop ---------------------------------------------------------------------------
    orr = rng["orders"]
    tr = rng["tickets"]
    orders_mean = config.order_lines_per_day / (1.0 + _MEAN_EXTRA_LINES)
    neg_count = np.zeros((TX + 16, n_c), dtype=np.int16)  # negative tickets by created day
    last_order = np.full(n_c, -1, dtype=np.int64)
    daily_rate = np.zeros((T, n_c), dtype=np.float32)
    next_order = 1
    log_churn_factor, log_churn_floor = math.log(_CHURN_FACTOR), math.log(_CHURN_FLOOR)

    O: dict[str, list[np.ndarray]] = {  # noqa: E741 - renamed with simulate()'s split (issue 23, item 3)
        k: [] for k in ("day", "num", "cust", "sec", "wh", "chan", "delay", "tele_sec", "tele_temp")}
    L: dict[str, list[np.ndarray]] = {
        k: []
        for k in ("order", "line", "prod", "qty", "lead", "rel", "load", "storm", "hol", "delay", "score", "p",
                  "late", "delivered", "report", "qty_deliv", "disc")
    }
    K: dict[str, list[np.ndarray]] = {k: [] for k in ("cust", "day", "kind", "order")}

    for t in range(T):
        if t > 0:
            churn_log = np.maximum(churn_log + log_churn_factor * neg_count[t - 1], log_churn_floor)
        walk = _WALK_PHI * walk + orr.normal(0.0, _WALK_SD, n_c)
        rate = np.exp(log_base + walk + churn_log)
        weight = rate * np.where(holiday[t, cust_region], _HOLIDAY_DEMAND, 1.0)
        total_w = weight.sum()
        day_mean = orders_mean * _WEEKLY[dow[t]] * yearly[t] * (total_w / rate.sum()) * orr.lognormal(0.0, 0.05)
        daily_rate[t] = weight / total_w * day_mean
        n_o = int(orr.poisson(day_mean))
        cum = np.cumsum(weight)

        # questions (neutral tickets) from active customers, independent of today's orders
        n_q = int(tr.poisson(_TICKET["question_per_customer_day"] * n_c))
        if n_q:
            q_cust = np.minimum(np.searchsorted(cum, tr.random(n_q) * total_w, side="right"), n_c - 1)
            q_order = np.where(tr.random(n_q) < 0.5, last_order[q_cust], -1)
            K["cust"].append(q_cust)
            K["day"].append(np.full(n_q, t))
            K["kind"].append(np.full(n_q, 4))
            K["order"].append(q_order)
        if n_o == 0:
            continue

        cust = np.minimum(np.searchsorted(cum, orr.random(n_o) * total_w, side="right"), n_c - 1)
        sec = np.clip(orr.normal(13.5 * 3600, 3.5 * 3600, n_o), 0, 86399).astype(np.int64)
        srt = np.argsort(sec, kind="stable")
        cust, sec = cust[srt], sec[srt]
        onum = next_order + np.arange(n_o, dtype=np.int64)
        next_order += n_o
        np.maximum.at(last_order, cust, onum)

        k = 1 + np.minimum(orr.poisson(_MEAN_EXTRA_LINES, n_o), _MAX_LINES - 1)
        n_l = int(k.sum())
        starts = np.cumsum(k) - k
        o_idx = np.repeat(np.arange(n_o), k)
        line_no = np.arange(n_l) - np.repeat(starts, k) + 1

        # products
        pw = popularity * prod_season[t] * promo_lift[t] * orr.lognormal(0.0, 0.15, n_p)
        pcum = np.cumsum(pw)
        prod = np.minimum(np.searchsorted(pcum, orr.random(n_l) * pcum[-1], side="right"), n_p - 1)
        disc = promo_disc[t, prod]
        c_line = cust[o_idx]
        qty = 1 + orr.poisson((qty_mean[prod] - 1.0) * size_factor[c_line] * np.where(disc > 0, _PROMO_QTY, 1.0))
        qty = np.minimum(qty, _MAX_QTY)

        # warehouse + channel per order
        wh = np.where(orr.random(n_o) < _HOME_WAREHOUSE_P, home_wh[cust], orr.integers(0, n_w, n_o))
        chan = np.where(orr.random(n_o) < _PREFERRED_CHANNEL_P, pref_channel[cust], orr.integers(0, len(CHANNELS), n_o))
        if drift_t is not None and t >= drift_t:
            chan = np.where(orr.random(n_o) < _NEW_CHANNEL_SHARE, len(CHANNELS), chan)
        wh_l = wh[o_idx]
        reg_o = cust_region[cust]
        reg_l = reg_o[o_idx]

        sup = prod_sup[prod]
        lead = sup_lead[sup] + (wh_region[wh_l] != reg_l) + (orr.random(n_l) < 0.3)
        lead = np.clip(lead, 2, 5)

        load_w = np.clip(np.bincount(wh_l, minlength=n_w) / capacity, 0.0, 3.0)
        load_o = load_w[wh]
        storm_disp = storm[t, reg_o] | storm[t + 1, reg_o]
        g = orr.gamma(_DELAY["gamma_shape"], 1.0 / _DELAY["gamma_shape"], n_o)
        delay_o = orr.poisson(
            g * (_DELAY["base"] + _DELAY["storm"] * storm_disp + _DELAY["load"] * np.maximum(load_o - _DELAY["load_ref"], 0.0))
        )
        storm_l = (storm_cum[t + 1 + lead, reg_l] - storm_cum[t + 1, reg_l]) > 0
        hol_l = (hol_cum[t + 1 + lead, reg_l] - hol_cum[t + 1, reg_l]) > 0
        rel = reliability[sup]
        if drift_t is not None and t >= drift_t:
            rel = np.where(sup == int(drift.degraded_supplier_id[1:]) - 1, drift.degraded_reliability, rel)
        delay_l = delay_o[o_idx]
        score = (
            _LATE["intercept"]
            + _LATE["unreliability"] * (rel_ref - rel)
            + _LATE["load"] * (load_o[o_idx] - 1.0)
            + _LATE["storm_in_transit"] * storm_l
            + _LATE["holiday_in_window"] * hol_l
            + _LATE["delay_events"] * np.minimum(delay_l, _LATE["delay_cap"])
        )
        if drift_t is not None and t >= drift_t:
            score = score + drift.new_channel_late_shift * (chan[o_idx] == len(CHANNELS))
        p_late = 1.0 / (1.0 + np.exp(-score))
        late = orr.random(n_l) < p_late
        days_late = np.minimum(orr.geometric(0.45, n_l), 6)
        early = np.minimum(orr.geometric(0.65, n_l) - 1, lead - 1)
        promised = t + lead
        delivered = np.where(late, promised + days_late, promised - early)
        report = delivered + (orr.random(n_l) < _ERP_LAG_P)
        short = orr.random(n_l) < _SHORT_DELIVERY_P
        qty_deliv = np.where(short, np.floor(qty * orr.random(n_l)).astype(np.int64), qty)

        # telemetry (recorded on dispatch day t + 1)
        tele_sec = orr.integers(6 * 3600, 22 * 3600, n_o)
        tele_temp = np.round(0.5 * temp[t + 1, reg_o] + 10.0 + orr.normal(0.0, 2.0, n_o), 1) + 0.0

        # tickets caused by this day's orders
        lateness = np.maximum.reduceat(delivered - promised, starts)
        deliv_max = np.maximum.reduceat(delivered, starts)
        u_t = tr.random(n_o)
        p_compl = np.minimum(_TICKET["late_base"] + _TICKET["late_per_day"] * lateness, _TICKET["late_max"])
        is_late_o = lateness > 0
        compl = is_late_o & (u_t < p_compl)
        praise = ~is_late_o & (u_t < _TICKET["positive_p"])
        damaged = ~is_late_o & (u_t >= _TICKET["positive_p"]) & (u_t < _TICKET["positive_p"] + _TICKET["damaged_p"])
        kind = np.full(n_o, -1)
        kind[compl] = np.where(tr.random(int(compl.sum())) < _TICKET["late_negative_share"], 0, 1)
        kind[praise] = 3
        kind[damaged] = 2
        has_t = kind >= 0
        if has_t.any():
            created = np.where(
                compl,
                deliv_max - np.floor(tr.random(n_o) * np.maximum(lateness, 1)).astype(np.int64),
                deliv_max + tr.integers(0, 3, n_o),
            )[has_t]
            kk = kind[has_t]
            tc = cust[has_t]
            K["cust"].append(tc)
            K["day"].append(created)
            K["kind"].append(kk)
            K["order"].append(onum[has_t])
            neg = _KIND_SENTIMENT[kk] == 0
            np.add.at(neg_count, (created[neg], tc[neg]), 1)

        O["day"].append(np.full(n_o, t))
        O["num"].append(onum)
        O["cust"].append(cust)
        O["sec"].append(sec)
        O["wh"].append(wh)
        O["chan"].append(chan)
        O["delay"].append(delay_o)
        O["tele_sec"].append(tele_sec)
        O["tele_temp"].append(tele_temp)
        L["order"].append(onum[o_idx])
        L["line"].append(line_no)
        L["prod"].append(prod)
        L["qty"].append(qty)
        L["lead"].append(lead)
        L["rel"].append(rel)
        L["load"].append(load_o[o_idx])
        L["storm"].append(storm_l)
        L["hol"].append(hol_l)
        L["delay"].append(delay_l)
        L["score"].append(score)
        L["p"].append(p_late)
        L["late"].append(late)
        L["delivered"].append(delivered)
        L["report"].append(report)
        L["qty_deliv"].append(qty_deliv)
        L["disc"].append(disc)

    def cat(d: dict[str, list[np.ndarray]], key: str, dtype: Any = np.int64) -> np.ndarray:
        return np.concatenate(d[key]).astype(dtype, copy=False) if d[key] else np.zeros(0, dtype=dtype)

    # ---- order-level arrays ----------------------------------------------------------------
    o_day, o_num, o_cust, o_sec = cat(O, "day"), cat(O, "num"), cat(O, "cust"), cat(O, "sec")
    o_wh, o_chan, o_delay = cat(O, "wh"), cat(O, "chan"), cat(O, "delay")
    o_tele_sec, o_tele_temp = cat(O, "tele_sec"), cat(O, "tele_temp", np.float64)
    n_orders = o_num.size
    # line arrays; map each line to its order position (order numbers are 1..n_orders, consecutive)
    l_order = cat(L, "order")
    l_pos = l_order - 1
    l_day = o_day[l_pos]
    l_cust = o_cust[l_pos]
    l_prod = cat(L, "prod")
    l_sup = prod_sup[l_prod]
    l_lead = cat(L, "lead")
    l_delivered, l_report = cat(L, "delivered"), cat(L, "report")
    l_disc = cat(L, "disc", np.float64)

    # ---- per-entity string tables ----------------------------------------------------------
    cust_ids = _ids("C", np.arange(1, n_c + 1), 5)
    first = _gather(_FIRST_NAMES, first_idx)
    last = _gather(_LAST_NAMES, last_idx)
    names_df = pl.DataFrame({"f": first, "l": last, "id": cust_ids})
    names_df = names_df.select(
        name=pl.col("f").str.to_titlecase() + pl.lit(" ") + pl.col("l").str.to_titlecase(),
        email=pl.col("f") + pl.lit(".") + pl.col("l") + pl.lit(".") + pl.col("id").str.slice(1) + pl.lit("@example.com"),
        first=pl.col("f").str.to_titlecase(),
    )
    cust_names, cust_emails, cust_first = names_df["name"], names_df["email"], names_df["first"]
    prod_ids = _ids("P", np.arange(1, n_p + 1), 4)
    sup_ids = _ids("S", np.arange(1, n_s + 1), 3)
    wh_ids = _ids("W", np.arange(1, n_w + 1), 2)
    channels_all = list(CHANNELS) + ([drift.new_channel] if drift is not None else [])

    # ---- prices ------------------------------------------------------------------------------
    price = base_price[l_prod]
    if drift_t is not None:
        price = np.where(l_day >= drift_t, np.round(base_price[l_prod] * drift.price_shift, 2), price)

    # ---- transactions ------------------------------------------------------------------------
    order_ids = _ids("O", o_num, 8)
    transactions = pl.DataFrame(
        {
            "order_id": order_ids.gather(l_pos),
            "line_number": cat(L, "line", np.int32),
            "ordered_at": _timestamps(epoch0, l_day, o_sec[l_pos]),
            "customer_id": cust_ids.gather(l_cust),
            "customer_name": cust_names.gather(l_cust),
            "customer_email": cust_emails.gather(l_cust),
            "region": _gather(REGIONS, cust_region[l_cust]),
            "product_id": prod_ids.gather(l_prod),
            "warehouse_id": wh_ids.gather(o_wh[l_pos]),
            "supplier_id": sup_ids.gather(l_sup),
            "quantity": cat(L, "qty", np.int32),
            "unit_price": price,
            "discount_pct": l_disc,
            "promised_date": _dates(epoch0, l_day + l_lead),
            "channel": _gather(channels_all, o_chan[l_pos]),
        }
    )

    line_truth = pl.DataFrame(
        {
            "order_id": transactions["order_id"],
            "line_number": transactions["line_number"],
            "order_date": _dates(epoch0, l_day),
            "supplier_reliability": cat(L, "rel", np.float64),
            "base_supplier_reliability": reliability[l_sup],
            "warehouse_load": cat(L, "load", np.float64),
            "storm_in_transit": cat(L, "storm", bool),
            "holiday_in_window": cat(L, "hol", bool),
            "delay_events": cat(L, "delay", np.int32),
            "promo": l_disc > 0,
            "late_score": cat(L, "score", np.float64),
            "late_probability": cat(L, "p", np.float64),
            "is_late": cat(L, "late", bool),
            "days_late": np.maximum(l_delivered - (l_day + l_lead), 0).astype(np.int32),
            "delivered_date": _dates(epoch0, l_delivered),
            "report_date": _dates(epoch0, l_report),
            "reported_in_window": l_report < T,
            "quantity_delivered": cat(L, "qty_deliv", np.int32),
        }
    )

    # ---- deliveries ------------------------------------------------------------------------
    in_win = np.flatnonzero(l_report < T)
    d_sel = in_win[np.lexsort((line_truth["line_number"].to_numpy()[in_win], l_order[in_win], l_report[in_win]))]
    deliveries = pl.DataFrame(
        {
            "order_id": order_ids.gather(l_pos[d_sel]),
            "line_number": transactions["line_number"].gather(d_sel),
            "delivered_date": _dates(epoch0, l_delivered[d_sel]),
            "quantity_delivered": line_truth["quantity_delivered"].gather(d_sel),
        }
    )

    # ---- telemetry ---------------------------------------------------------------------------
    tele_day = o_day + 1
    t_sel = np.flatnonzero(tele_day < T)
    t_sel = t_sel[np.lexsort((o_num[t_sel], o_tele_sec[t_sel], tele_day[t_sel]))]
    telemetry = pl.DataFrame(
        {
            "event_id": _ids("EV", np.arange(1, t_sel.size + 1), 9),
            "shipment_id": _ids("SH", o_num[t_sel], 8),
            "order_id": order_ids.gather(t_sel),
            "recorded_at": _timestamps(epoch0, tele_day[t_sel], o_tele_sec[t_sel]),
            "region": _gather(REGIONS, cust_region[o_cust[t_sel]]),
            "temperature_c": o_tele_temp[t_sel],
            "delay_events": o_delay[t_sel].astype(np.int32),
        }
    )

    # ---- overrides (operators review lines on the dispatch day, order day + 1) ----------------
    opr = rng["operators"]
    l_late = line_truth["is_late"].to_numpy()
    l_dispatch = l_day + 1
    v_pick = opr.random(l_order.size) < _OVERRIDE["share"]
    v_correct = opr.random(l_order.size) < _OVERRIDE["label_accuracy"]
    v_sec = opr.integers(7 * 3600, 20 * 3600, l_order.size)
    v_op = opr.integers(1, _OVERRIDE["operators"] + 1, l_order.size)
    v_reason = opr.integers(0, 1 << 30, l_order.size)
    v_sel = np.flatnonzero(v_pick & (l_dispatch < T))
    v_sel = v_sel[np.lexsort((v_sec[v_sel], l_dispatch[v_sel]))]
    v_label = np.where(v_correct[v_sel], l_late[v_sel], ~l_late[v_sel])
    n_late_r, n_ontime_r = len(_OVERRIDE["reasons_late"]), len(_OVERRIDE["reasons_on_time"])
    v_reason_idx = np.where(v_label, v_reason[v_sel] % n_late_r, n_late_r + v_reason[v_sel] % n_ontime_r)
    override_ids = _ids("OV", np.arange(1, v_sel.size + 1), 8)
    overrides = pl.DataFrame(
        {
            "override_id": override_ids,
            "created_at": _timestamps(epoch0, l_dispatch[v_sel], v_sec[v_sel]),
            "use_case": _gather(("late_delivery",), np.zeros(v_sel.size)),
            "entity_id": transactions.select(
                pl.col("order_id") + pl.lit("-") + pl.col("line_number").cast(pl.String)
            ).to_series().gather(v_sel),
            "operator_id": _ids("OP", v_op[v_sel], 2),
            "override_label": v_label,
            "reason": _gather(_OVERRIDE["reasons_late"] + _OVERRIDE["reasons_on_time"], v_reason_idx),
        }
    )
    override_truth = pl.DataFrame(
        {
            "override_id": override_ids,
            "order_id": transactions["order_id"].gather(v_sel),
            "line_number": transactions["line_number"].gather(v_sel),
            "is_late": l_late[v_sel],
            "label_correct": v_correct[v_sel],
        }
    )

    # ---- tickets -----------------------------------------------------------------------------
    k_cust, k_day, k_kind, k_order = cat(K, "cust"), cat(K, "day"), cat(K, "kind"), cat(K, "order")
    txr = rng["texts"]
    n_k = k_cust.size
    k_sec = txr.integers(7 * 3600, 22 * 3600, n_k)
    k_chan = txr.choice(len(CONTACT_CHANNELS), size=n_k, p=[0.5, 0.3, 0.2])
    k_pick = txr.integers(0, 1 << 30, (n_k, 5))
    k_sel = np.flatnonzero(k_day < T)
    k_sel = k_sel[np.lexsort((k_cust[k_sel], k_sec[k_sel], k_day[k_sel]))]
    kc, kd, kk, ko = k_cust[k_sel], k_day[k_sel], k_kind[k_sel], k_order[k_sel]
    pick = k_pick[k_sel]
    subj = np.empty(kk.size, dtype=object)
    parts = {name: np.empty(kk.size, dtype=object) for name in ("open", "mid", "close")}
    for kind_code in range(len(_KINDS)):
        m = kk == kind_code
        if not m.any():
            continue
        for name, table, col in (
            ("subj", _SUBJECTS, 1), ("open", _OPENINGS, 1), ("mid", _MIDDLES, 2), ("close", _CLOSINGS, 3)
        ):
            options = np.array(table[kind_code], dtype=object)
            chosen = options[pick[m, col] % len(options)]
            if name == "subj":
                subj[m] = chosen
            else:
                parts[name][m] = chosen
    signoff = np.array(_SIGNOFFS, dtype=object)[pick[:, 4] % len(_SIGNOFFS)] if kk.size else np.empty(0, dtype=object)
    has_order = ko > 0
    order_str = pl.Series("x", np.where(has_order, ko, 0)).cast(pl.String).str.zfill(8)
    order_id_col = pl.select(
        pl.when(pl.Series("h", has_order)).then(pl.lit("O") + order_str).otherwise(None).alias("x")
    ).to_series()
    tk = pl.DataFrame(
        {
            "oid": order_id_col,
            "subj": pl.Series("s", subj.tolist(), dtype=pl.String),
            "open": pl.Series("o", parts["open"].tolist(), dtype=pl.String),
            "mid": pl.Series("m", parts["mid"].tolist(), dtype=pl.String),
            "close": pl.Series("c", parts["close"].tolist(), dtype=pl.String),
            "sign": pl.Series("g", signoff.tolist(), dtype=pl.String),
            "first": cust_first.gather(kc),
        }
    )
    body = tk.select(
        pl.concat_str(
            [
                pl.when(pl.col("oid").is_not_null())
                .then(pl.lit("Regarding order ") + pl.col("oid") + pl.lit(". "))
                .otherwise(pl.lit("")),
                pl.col("open"), pl.lit(" "), pl.col("mid"), pl.lit(" "), pl.col("close"), pl.lit(" "),
                pl.col("sign"), pl.col("first"), pl.lit("."),
            ]
        ).alias("body")
    )["body"]
    ticket_ids = _ids("T", np.arange(1, kk.size + 1), 8)
    tickets = pl.DataFrame(
        {
            "ticket_id": ticket_ids,
            "created_at": _timestamps(epoch0, kd, k_sec[k_sel]),
            "customer_id": cust_ids.gather(kc),
            "customer_email": cust_emails.gather(kc),
            "order_id": order_id_col,
            "contact_channel": _gather(CONTACT_CHANNELS, k_chan[k_sel]),
            "subject": tk["subj"],
            "body": body,
        }
    )
    ticket_truth = pl.DataFrame(
        {
            "ticket_id": ticket_ids,
            "customer_id": tickets["customer_id"],
            "created_date": _dates(epoch0, kd),
            "sentiment": _gather(_SENTIMENTS, _KIND_SENTIMENT[kk]),
            "kind": _gather(_KINDS, kk),
        }
    )

    # ---- holidays (published view) ------------------------------------------------------------
    # holiday h is published on days D in [hol_t - 13, hol_t] within the window
    pub_lo = np.maximum(hol_t - 13, 0)
    pub_hi = np.minimum(hol_t, T - 1)
    n_pub = np.maximum(pub_hi - pub_lo + 1, 0)
    h_idx = np.repeat(np.arange(hol_t.size), n_pub)
    h_pub = pub_lo[h_idx] + (np.arange(h_idx.size) - np.repeat(np.cumsum(n_pub) - n_pub, n_pub))
    h_ord = np.lexsort((hol_r[h_idx], hol_t[h_idx], h_pub))
    h_idx, h_pub = h_idx[h_ord], h_pub[h_ord]
    holidays = pl.DataFrame(
        {
            "published_date": _dates(epoch0, h_pub),
            "holiday_date": _dates(epoch0, hol_t[h_idx]),
            "region": _gather(REGIONS, hol_r[h_idx]),
            "holiday_name": _gather(hol_name, h_idx) if hol_name else pl.Series("x", [], dtype=pl.String),
        }
    )
    holiday_calendar = pl.DataFrame(
        {
            "holiday_date": _dates(epoch0, hol_t),
            "region": _gather(REGIONS, hol_r),
            "holiday_name": pl.Series("x", hol_name, dtype=pl.String),
        }
    )

    # ---- weather -------------------------------------------------------------------------------
    w_day = np.repeat(np.arange(T), n_r)
    w_reg = np.tile(np.arange(n_r), T)
    weather = pl.DataFrame(
        {
            "weather_date": _dates(epoch0, w_day),
            "region": _gather(REGIONS, w_reg),
            "temperature_c": temp[:T].reshape(-1),
            "precipitation_mm": precip[:T].reshape(-1),
            "storm": storm[:T].reshape(-1),
        }
    )

    # ---- truth tables ---------------------------------------------------------------------------
    neg_per_cust = neg_count[:T].sum(axis=0)
    customer_truth = pl.DataFrame(
        {
            "customer_id": cust_ids,
            "customer_name": cust_names,
            "customer_email": cust_emails,
            "region": _gather(REGIONS, cust_region),
            "home_warehouse_id": wh_ids.gather(home_wh),
            "preferred_channel": _gather(CHANNELS, pref_channel),
            "base_log_rate": log_base,
            "size_factor": size_factor,
            "initial_rate": daily_rate[0].astype(np.float64) if T else np.zeros(n_c),
            "final_rate": daily_rate[-1].astype(np.float64) if T else np.zeros(n_c),
            "churn_multiplier": np.exp(churn_log),
            "negative_tickets": neg_per_cust.astype(np.int32),
        }
    )
    supplier_truth = pl.DataFrame(
        {
            "supplier_id": sup_ids,
            "base_reliability": reliability,
            "lead_days": sup_lead.astype(np.int32),
            "bad_supplier": bad,
        }
    )
    product_truth = pl.DataFrame(
        {
            "product_id": prod_ids,
            "supplier_id": sup_ids.gather(prod_sup),
            "base_price": base_price,
            "popularity": popularity,
            "mean_quantity": qty_mean,
            "season_amplitude": season_amp,
            "season_phase": season_phase,
        }
    )
    warehouse_truth = pl.DataFrame(
        {"warehouse_id": wh_ids, "region": _gather(REGIONS, wh_region), "capacity_lines_per_day": capacity}
    )
    pr_arr = np.array(promo_rows, dtype=np.float64).reshape(-1, 4)
    promotions = pl.DataFrame(
        {
            "product_id": prod_ids.gather(pr_arr[:, 0].astype(np.int64)),
            "start_date": _dates(epoch0, pr_arr[:, 1].astype(np.int64)),
            "end_date": _dates(epoch0, pr_arr[:, 2].astype(np.int64)),
            "discount_pct": pr_arr[:, 3],
        }
    )

    partition_day = {
        "transactions": l_day.astype(np.int32),
        "deliveries": l_report[d_sel].astype(np.int32),
        "telemetry": tele_day[t_sel].astype(np.int32),
        "tickets": kd.astype(np.int32),
        "holidays": h_pub.astype(np.int32),
        "weather": w_day.astype(np.int32),
        "overrides": l_dispatch[v_sel].astype(np.int32),
    }
    truth = {
        "late_model": {**_LATE, "reliability_ref": rel_ref},
        "delay_model": dict(_DELAY),
        "weekly_factor": _WEEKLY.tolist(),
        "yearly_amplitude": _YEARLY_AMP,
        "yearly_peak_doy": _YEARLY_PEAK_DOY,
        "promo_lift": f"1 + {_PROMO_LIFT_PER_DISCOUNT} * discount_pct",
        "promo_quantity_factor": _PROMO_QTY,
        "holiday_demand_factor": _HOLIDAY_DEMAND,
        "churn_factor": _CHURN_FACTOR,
        "churn_floor": _CHURN_FLOOR,
        "walk": {"phi": _WALK_PHI, "sd": _WALK_SD},
        "ticket_model": dict(_TICKET),
        "erp_lag_probability": _ERP_LAG_P,
        "override_model": dict(_OVERRIDE),
        "n_customers": n_c,
        "n_orders": n_orders,
        "n_lines": int(l_order.size),
        "late_rate": float(line_truth["is_late"].mean()) if l_order.size else 0.0,
        "drift": None
        if drift is None
        else {
            "start_date": drift.start_date.isoformat(),
            "start_day": drift_t,
            "degraded_supplier_id": drift.degraded_supplier_id,
            "degraded_reliability": drift.degraded_reliability,
            "new_channel": drift.new_channel,
            "new_channel_share": _NEW_CHANNEL_SHARE,
            "new_channel_late_shift": drift.new_channel_late_shift,
            "price_shift": drift.price_shift,
        },
    }
    service_usage, partition_day["service_usage"] = _service_usage(config)
    return SimulatedData(
        config=config,
        transactions=transactions,
        deliveries=deliveries,
        telemetry=telemetry,
        tickets=tickets,
        holidays=holidays,
        weather=weather,
        overrides=overrides,
        service_usage=service_usage,
        partition_day=partition_day,
        line_truth=line_truth,
        customer_truth=customer_truth,
        supplier_truth=supplier_truth,
        product_truth=product_truth,
        warehouse_truth=warehouse_truth,
        promotions=promotions,
        ticket_truth=ticket_truth,
        override_truth=override_truth,
        holiday_calendar=holiday_calendar,
        customer_daily_rate=daily_rate,
        truth=truth,
    )


#: Departments calling the factory's services, their mean calls per day and the services they call.
_SERVICE_CALLERS = {
    "customer-service": (12.0, ("sentiment", "purchase_propensity")),
    "logistics-planning": (8.0, ("late_delivery", "demand_forecast")),
    "finance": (2.0, ("demand_forecast",)),
    "anonymous": (1.0, ("sentiment", "purchase_propensity")),
}
_SERVICE_OUTCOMES = {"ok": 0.93, "bad_input": 0.05, "not_found": 0.02}


def _service_usage(config: SimulationConfig) -> tuple[pl.DataFrame, np.ndarray]:
    """Calls of the factory's services by departments (what distribution/services.py's usage log
    writes): Poisson calls per caller and day, weekdays busier, rows log-normal, latency growing
    with the rows. Its own random stream, so the other sources do not change with it."""
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 0x5E5]))
    weekly = np.array([_WEEKLY[(config.start_date + datetime.timedelta(days=d)).weekday()] for d in range(config.days)])
    records: dict[str, list] = {c: [] for c in COLUMNS["service_usage"]}
    days = []
    epoch = datetime.datetime.combine(config.start_date, datetime.time())
    outcomes, weights = list(_SERVICE_OUTCOMES), np.array(list(_SERVICE_OUTCOMES.values()))
    for caller, (per_day, services) in _SERVICE_CALLERS.items():
        counts = rng.poisson(per_day * weekly)
        for day, count in enumerate(counts):
            seconds = np.sort(rng.integers(6 * 3600, 20 * 3600, count))
            rows = np.maximum(1, rng.lognormal(3.0, 1.2, count).astype(np.int64))
            status = rng.choice(outcomes, size=count, p=weights / weights.sum())
            for second, n, state in zip(seconds, rows, status, strict=True):
                records["called_at"].append(epoch + datetime.timedelta(days=day, seconds=int(second)))
                records["caller"].append(caller)
                records["service"].append(str(rng.choice(services)) if state != "not_found" else "churn")
                records["service_version"].append(None if state == "not_found" else "v1")
                records["channel"].append("http" if caller != "finance" else "cli")
                records["rows"].append(int(n))
                records["latency_ms"].append(round(float(4.0 + 0.05 * n + rng.exponential(3.0)), 3))
                records["status"].append(str(state))
                records["error"].append({"ok": None, "bad_input": "input does not fit the contract",
                                         "not_found": "ServiceNotFoundError"}[state])
                days.append(day)
    frame = pl.DataFrame(records, schema={"called_at": pl.Datetime("us"), "caller": pl.String, "service": pl.String,
                                          "service_version": pl.String, "channel": pl.String, "rows": pl.Int64,
                                          "latency_ms": pl.Float64, "status": pl.String, "error": pl.String})
    order = np.argsort(frame["called_at"].to_numpy(), kind="stable")
    return frame[order], np.asarray(days, dtype=np.int32)[order]


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def ticket_triage(n: int, seed: int = 0, days: int = 120, start: date = date(2026, 1, 1)) -> pl.DataFrame:
    """``n`` support tickets written from the simulator's phrases, with a triage label to learn.

    ``escalated``: whether the ticket went to a senior agent. Complaints (late, damaged or wrong
    goods) escalate more often than questions and praise, and far more often when the customer
    phoned: the text alone gives part of the signal, the contact channel the rest."""
    rng = np.random.default_rng(seed)
    kind = rng.choice(len(_KINDS), size=n, p=[0.25, 0.2, 0.15, 0.1, 0.3])
    channel = rng.choice(len(CONTACT_CHANNELS), size=n, p=[0.5, 0.3, 0.2])
    pick = rng.integers(0, 1 << 30, (n, 5))
    body = []
    for i in range(n):
        k = int(kind[i])
        body.append(" ".join((_OPENINGS[k][pick[i, 1] % len(_OPENINGS[k])], _MIDDLES[k][pick[i, 2] % len(_MIDDLES[k])],
                              _CLOSINGS[k][pick[i, 3] % len(_CLOSINGS[k])],
                              _SIGNOFFS[pick[i, 4] % len(_SIGNOFFS)] + _FIRST_NAMES[pick[i, 0] % len(_FIRST_NAMES)] + ".")))
    complaint = np.isin(kind, [0, 2])
    phoned = channel == CONTACT_CHANNELS.index("phone")
    logit = -2.5 + 1.2 * complaint + 0.4 * (kind == 1) + 2.3 * (complaint & phoned) - 0.8 * (phoned & ~complaint)
    escalated = rng.random(n) < 1.0 / (1.0 + np.exp(-logit))
    day = np.sort(rng.integers(0, days, n))
    return pl.DataFrame({
        "ticket_id": _ids("T", np.arange(1, n + 1), 8),
        "created_date": pl.Series([start + datetime.timedelta(days=int(d)) for d in day], dtype=pl.Date),
        "contact_channel": _gather(CONTACT_CHANNELS, channel),
        "body": pl.Series(body, dtype=pl.String),
        "escalated": pl.Series(escalated, dtype=pl.Boolean),
    })


def _encode(frame: pl.DataFrame, ext: str) -> str:
    if ext == "csv":
        return frame.write_csv(datetime_format=TIMESTAMP_FORMAT, date_format=DATE_FORMAT)
    return frame.write_ndjson()


#: rows serialised at once when writing (bounds memory; whole days per chunk)
_WRITE_CHUNK_ROWS = 250_000


def write_landing_files(data: SimulatedData, landing_dir: Path) -> dict[str, list[Path]]:
    """Write one file per source and day under ``landing_dir/<source>/``; returns paths per source.

    Each source is serialised by polars in chunks of whole days and the bytes are cut at row
    boundaries (newline offsets), which avoids a writer call per file; the bytes are identical to
    writing each day's slice on its own.
    """
    landing_dir = Path(landing_dir)
    cfg = data.config
    day_names = [d.isoformat() for d in cfg.window()]
    written: dict[str, list[Path]] = {}
    for source in SOURCES:
        frame = getattr(data, source)
        ext = EXTENSIONS[source]
        folder = landing_dir / source
        folder.mkdir(parents=True, exist_ok=True)
        if ext == "jsonl":
            frame = frame.with_columns(
                pl.col(c).dt.strftime(TIMESTAMP_FORMAT) for c, dt in frame.schema.items() if dt == pl.Datetime("us")
            ).with_columns(pl.col(c).dt.strftime(DATE_FORMAT) for c, dt in frame.schema.items() if dt == pl.Date)
        bounds = np.searchsorted(data.partition_day[source], np.arange(cfg.days + 1), side="left")
        header = _encode(frame.head(0), "csv").encode() if ext == "csv" else b""
        paths: list[Path] = []
        i = 0
        while i < cfg.days:
            # a chunk of whole days [i, j) with at most _WRITE_CHUNK_ROWS rows (at least one day)
            j = int(np.searchsorted(bounds, bounds[i] + _WRITE_CHUNK_ROWS, side="right")) - 1
            j = min(max(j, i + 1), cfg.days)
            lo, hi = int(bounds[i]), int(bounds[j])
            buf = _encode(frame.slice(lo, hi - lo), ext).encode()
            newlines = np.flatnonzero(np.frombuffer(buf, dtype=np.uint8) == 10)
            if ext == "csv":
                offsets = newlines + 1  # offsets[k] = start of row k (offsets[0] = end of header)
            else:
                offsets = np.concatenate([[0], newlines + 1])
            if offsets.size != hi - lo + 1:  # a value with an embedded newline: slow, safe path
                offsets = None
            view = memoryview(buf)
            for day in range(i, j):
                path = folder / f"{source}_{day_names[day]}.{ext}"
                a, b = int(bounds[day]) - lo, int(bounds[day + 1]) - lo
                if ext == "jsonl" and a == b:
                    if path.exists():  # stale file from an earlier run: a day without records has no file
                        path.unlink()
                    continue
                if offsets is None:
                    payload: bytes | memoryview = _encode(frame.slice(lo + a, b - a), ext).encode()
                elif ext == "csv":
                    payload = header + view[offsets[a] : offsets[b]]
                else:
                    payload = view[offsets[a] : offsets[b]]
                atomic_write(path, payload, durable=False)
                paths.append(path)
            i = j
        written[source] = paths
    return written


def generate_demo_data(config: SimulationConfig, landing_dir: Path) -> dict[str, list[Path]]:
    """Simulate and write the landing files."""
    return write_landing_files(simulate(config), Path(landing_dir))


def _main(argv: list[str] | None = None) -> None:  # pragma: no cover - convenience CLI
    import argparse
    import tempfile

    ap = argparse.ArgumentParser(description="Simulate the distributor and write landing files.")
    ap.add_argument("--out", type=Path, default=None, help="landing dir (default: a temp dir)")
    ap.add_argument("--start", type=date.fromisoformat, default=date(2025, 1, 1))
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--lines-per-day", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--drift-start", type=date.fromisoformat, default=None)
    args = ap.parse_args(argv)
    cfg = SimulationConfig(
        start_date=args.start, days=args.days, order_lines_per_day=args.lines_per_day, seed=args.seed,
        drift=DriftScenario(start_date=args.drift_start) if args.drift_start else None,
    )
    t0 = time.perf_counter()
    data = simulate(cfg)
    t1 = time.perf_counter()
    out = args.out or Path(tempfile.mkdtemp(prefix="landing_"))
    paths = write_landing_files(data, out)
    t2 = time.perf_counter()
    print(f"{data.transactions.height} lines, late rate {data.truth['late_rate']:.3f}; "
          f"simulate {t1 - t0:.2f}s, write {t2 - t1:.2f}s ({sum(map(len, paths.values()))} files) -> {out}")


if __name__ == "__main__":  # pragma: no cover
    _main()
