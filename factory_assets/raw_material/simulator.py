"""Seeded, vectorised simulator of a mid-sized distributor that writes daily landing files.

Pure Python + numpy + polars (no Dagster import). ``simulate(config)`` builds everything in
memory; ``write_landing_files(data, landing_dir)`` writes one file per source and day;
``generate_demo_data(config, landing_dir)`` does both. The same config (seed included) gives
byte-identical files. All randomness comes from ``numpy.random.Generator(PCG64(...))`` streams
derived from ``config.seed`` (one independent stream per sub-model, so e.g. the weather does not
change when the order volume does).

Landing layout (``landing_dir/<source>/<source>_YYYY-MM-DD.<ext>``; the date is the delivery /
partition day; every file is written to a hidden temporary file and then ``os.replace``-d into place):

===============  =====  ==========================================================================
source           ext    rows in the file of day D
===============  =====  ==========================================================================
transactions     csv    order lines ordered on D
deliveries       csv    order lines whose delivery was *reported* on D (delivered_date, or the day
                        after for ~25% of lines: ERP lag); reports after the window are absent
telemetry        jsonl  one tracker reading per shipment (= order) dispatched on D (order day + 1)
tickets          jsonl  support tickets created on D
holidays         csv    all holidays with holiday_date in [D, D+13], published on D
weather          csv    one row per region observed on D
overrides        csv    operators' overrides of the late-delivery prediction made on D (~3% of the
                        order lines dispatched on D, i.e. ordered on D-1), with a reason
service_usage    jsonl  departments' calls of the factory's services on D (caller, service, rows,
                        latency, outcome), as the services' usage log delivers them
ticket_outcomes  csv    the support desk's closed tickets of D: whether a senior agent took the
                        ticket (escalated) and which team resolved it; declared by the customer_care
                        business unit, not the core
===============  =====  ==========================================================================

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
from dataclasses import dataclass, field, fields
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

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
    "escalation_probability",
    "generate_demo_data",
    "simulate",
    "ticket_triage",
    "write_landing_files",
]

# --------------------------------------------------------------------------------------------
# Public constants: landing layout
# --------------------------------------------------------------------------------------------

SOURCES: tuple[str, ...] = ("transactions", "deliveries", "telemetry", "tickets", "holidays", "weather", "overrides",
                            "service_usage", "ticket_outcomes")
EXTENSIONS: dict[str, str] = {
    "transactions": "csv",
    "deliveries": "csv",
    "telemetry": "jsonl",
    "tickets": "jsonl",
    "holidays": "csv",
    "weather": "csv",
    "overrides": "csv",
    "service_usage": "jsonl",
    "ticket_outcomes": "csv",
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
    "ticket_outcomes": ("ticket_id", "closed_at", "escalated", "resolved_by"),
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
    #: Multiplies every kind of support ticket's chance (questions, complaints, praise, damaged goods):
    #: a world with enough tickets to learn from at a small order volume.
    ticket_rate: float = 1.0

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
    ticket_outcomes: pl.DataFrame
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
    if not 0.0 <= config.ticket_rate <= 1.0 / (_TICKET["positive_p"] + _TICKET["damaged_p"]):
        raise ValueError(f"ticket_rate must be in 0..{1.0 / (_TICKET['positive_p'] + _TICKET['damaged_p']):.0f}")
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
# Simulation: one function per sub-model, called in order by simulate()
# --------------------------------------------------------------------------------------------


def simulate(config: SimulationConfig) -> SimulatedData:
    """Simulate the distributor for ``config.days`` days; everything stays in memory."""
    _validate(config)
    # a new stream goes at the end: SeedSequence children are numbered, so the others stay the same
    rng = _rngs(config.seed, ("entities", "weather", "promos", "customers", "orders", "tickets", "texts", "operators"))
    timeline = _timeline(config)
    suppliers = _suppliers(config, rng["entities"])
    catalogue = _catalogue(config, rng["entities"], suppliers)
    customers = _customers(config, rng["customers"])
    warehouses = _warehouses(config, rng["entities"], customers)  # after the catalogue: they share a stream
    weather = _weather(timeline, rng["weather"])
    holidays = _holidays(config, timeline)
    promotions = _promotions(timeline, rng["promos"], catalogue)
    book = _order_book(config, timeline, suppliers, catalogue, customers, warehouses, weather, holidays, promotions,
                       rng["orders"], rng["tickets"])

    order_ids = _ids("O", book.orders.number, 8)
    transactions, line_truth = _transactions(config, timeline, book, order_ids, suppliers, catalogue, customers,
                                             warehouses)
    deliveries, delivery_days = _deliveries(timeline, book.lines, order_ids)
    telemetry, telemetry_days = _telemetry(timeline, book.orders, order_ids, customers)
    overrides, override_days, override_truth = _overrides(timeline, book.lines, transactions, rng["operators"])
    tickets, ticket_days, ticket_truth = _tickets(timeline, book.ticket_events, customers, rng["texts"])
    published_holidays, holiday_days, holiday_calendar = _published_holidays(timeline, holidays)
    weather_reports, weather_days = _weather_reports(timeline, weather)
    service_usage, service_days = _service_usage(config)
    ticket_outcomes, outcome_days = _ticket_outcomes(config, timeline, tickets, ticket_days, ticket_truth)
    return SimulatedData(
        config=config,
        transactions=transactions,
        deliveries=deliveries,
        telemetry=telemetry,
        tickets=tickets,
        holidays=published_holidays,
        weather=weather_reports,
        overrides=overrides,
        service_usage=service_usage,
        ticket_outcomes=ticket_outcomes,
        partition_day={
            "transactions": book.lines.day.astype(np.int32),
            "deliveries": delivery_days,
            "telemetry": telemetry_days,
            "tickets": ticket_days,
            "holidays": holiday_days,
            "weather": weather_days,
            "overrides": override_days,
            "service_usage": service_days,
            "ticket_outcomes": outcome_days,
        },
        line_truth=line_truth,
        customer_truth=customers.truth(warehouses, book),
        supplier_truth=suppliers.truth(),
        product_truth=catalogue.truth(suppliers),
        warehouse_truth=warehouses.truth(),
        promotions=promotions.windows,
        ticket_truth=ticket_truth,
        override_truth=override_truth,
        holiday_calendar=holiday_calendar,
        customer_daily_rate=book.daily_rate,
        truth=_parameters(config, timeline, catalogue, book, line_truth),
    )


# ---- time ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Timeline:
    """The simulated days: the window, plus the margin after it that weather, holidays and deliveries reach into."""

    days: int  # the window; day 0 is config.start_date
    horizon: int  # the window and the margin
    epoch_day: int  # config.start_date in days since 1970-01-01
    day_of_year: np.ndarray  # per horizon day, counted from 1 January = 1
    weekday: np.ndarray  # per horizon day, Monday = 0
    drift_day: int | None  # the day config.drift starts; None without drift

    def drifted(self, day: int) -> bool:
        return self.drift_day is not None and day >= self.drift_day


def _timeline(config: SimulationConfig) -> _Timeline:
    horizon = config.days + _MARGIN
    day_dt = np.datetime64(config.start_date.isoformat(), "D") + np.arange(horizon)
    return _Timeline(
        days=config.days,
        horizon=horizon,
        epoch_day=(config.start_date - date(1970, 1, 1)).days,
        day_of_year=(day_dt - day_dt.astype("datetime64[Y]").astype("datetime64[D]")).astype(np.int64) + 1,
        weekday=(day_dt.astype(np.int64) + 3) % 7,
        drift_day=(config.drift.start_date - config.start_date).days if config.drift is not None else None,
    )


# ---- entities --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Suppliers:
    """Who the products come from: how reliable each supplier is (the late model's main term) and its lead time."""

    ids: pl.Series
    unreliable: np.ndarray
    reliability: np.ndarray  # base reliability, before any drift
    lead_days: np.ndarray

    def truth(self) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "supplier_id": self.ids,
                "base_reliability": self.reliability,
                "lead_days": self.lead_days.astype(np.int32),
                "bad_supplier": self.unreliable,
            }
        )


def _suppliers(config: SimulationConfig, rng: np.random.Generator) -> _Suppliers:
    n_suppliers = config.n_suppliers
    # a quarter of the suppliers (at least one when there are two or more) are unreliable; S003,
    # the default degraded supplier of the drift scenario, is always a good one so that its drift
    # is visible
    candidates = np.array([i for i in range(n_suppliers) if i != 2 or n_suppliers < 3])
    n_unreliable = min(max(round(0.25 * n_suppliers), 1 if n_suppliers >= 2 else 0), candidates.size)
    unreliable = np.zeros(n_suppliers, dtype=bool)
    unreliable[rng.choice(candidates, size=n_unreliable, replace=False)] = True
    reliability = np.where(unreliable, rng.beta(3.0, 2.5, n_suppliers), rng.beta(16.0, 2.0, n_suppliers))
    lead_days = rng.integers(2, 4, n_suppliers)
    return _Suppliers(ids=_ids("S", np.arange(1, n_suppliers + 1), 3), unreliable=unreliable, reliability=reliability,
                      lead_days=lead_days)


@dataclass(frozen=True)
class _Catalogue:
    """The products: supplier, list price, how popular, how many per line, and their own yearly season."""

    ids: pl.Series
    supplier: np.ndarray
    popularity: np.ndarray
    base_price: np.ndarray  # list price, before the drift's price shift
    mean_quantity: np.ndarray
    season_amplitude: np.ndarray
    season_phase: np.ndarray
    #: popularity-weighted mean base reliability of the suppliers: the late model's reference point, which keeps
    #: the overall late rate stable across seeds
    reliability_ref: float

    def truth(self, suppliers: _Suppliers) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "product_id": self.ids,
                "supplier_id": suppliers.ids.gather(self.supplier),
                "base_price": self.base_price,
                "popularity": self.popularity,
                "mean_quantity": self.mean_quantity,
                "season_amplitude": self.season_amplitude,
                "season_phase": self.season_phase,
            }
        )


def _catalogue(config: SimulationConfig, rng: np.random.Generator, suppliers: _Suppliers) -> _Catalogue:
    n_products, n_suppliers = config.n_products, config.n_suppliers
    # every supplier sells at least one product when there are enough products
    supplier = np.concatenate([rng.permutation(n_suppliers)[: min(n_suppliers, n_products)],
                               rng.integers(0, n_suppliers, max(0, n_products - n_suppliers))])
    supplier = rng.permutation(supplier)
    popularity = rng.lognormal(0.0, 0.8, n_products)
    base_price = np.round(np.clip(rng.lognormal(3.2, 0.7, n_products), 1.0, 2000.0), 2)
    mean_quantity = rng.uniform(1.5, 6.0, n_products)
    season_amplitude = rng.uniform(0.05, 0.5, n_products)
    season_phase = rng.uniform(0.0, 2 * np.pi, n_products)
    return _Catalogue(
        ids=_ids("P", np.arange(1, n_products + 1), 4),
        supplier=supplier,
        popularity=popularity,
        base_price=base_price,
        mean_quantity=mean_quantity,
        season_amplitude=season_amplitude,
        season_phase=season_phase,
        reliability_ref=float(np.sum(popularity * suppliers.reliability[supplier]) / np.sum(popularity)),
    )


def _warehouse_regions(n_warehouses: int) -> np.ndarray:
    """Region index of each warehouse: they are dealt out over the regions in turn."""
    return np.arange(n_warehouses) % len(REGIONS)


@dataclass(frozen=True)
class _Customers:
    """The customer base: where each customer is, how it orders, and its latent purchase rate's starting point."""

    ids: pl.Series
    names: pl.Series
    emails: pl.Series
    first_names: pl.Series  # signs the tickets
    region: np.ndarray
    home_warehouse: np.ndarray
    preferred_channel: np.ndarray
    log_base_rate: np.ndarray
    size_factor: np.ndarray  # scales the quantity of every line
    initial_walk: np.ndarray  # the rate's random walk before the first day, drawn from its stationary law

    def truth(self, warehouses: _Warehouses, book: _OrderBook) -> pl.DataFrame:
        """What the customers were, and what the window's trade made of their purchase rate."""
        n_days = book.daily_rate.shape[0]
        return pl.DataFrame(
            {
                "customer_id": self.ids,
                "customer_name": self.names,
                "customer_email": self.emails,
                "region": _gather(REGIONS, self.region),
                "home_warehouse_id": warehouses.ids.gather(self.home_warehouse),
                "preferred_channel": _gather(CHANNELS, self.preferred_channel),
                "base_log_rate": self.log_base_rate,
                "size_factor": self.size_factor,
                "initial_rate": book.daily_rate[0].astype(np.float64) if n_days else np.zeros(self.region.size),
                "final_rate": book.daily_rate[-1].astype(np.float64) if n_days else np.zeros(self.region.size),
                "churn_multiplier": np.exp(book.churn_log),
                "negative_tickets": book.negative_tickets[:n_days].sum(axis=0).astype(np.int32),
            }
        )


def _customers(config: SimulationConfig, rng: np.random.Generator) -> _Customers:
    n_customers, n_warehouses, n_regions = config.customers, config.n_warehouses, len(REGIONS)
    warehouse_region = _warehouse_regions(n_warehouses)
    region = rng.choice(n_regions, size=n_customers, p=_REGION_WEIGHTS)
    home_warehouse = np.empty(n_customers, dtype=np.int64)
    for r in range(n_regions):
        mask = region == r
        options = np.flatnonzero(warehouse_region == r)
        if options.size == 0:
            options = np.arange(n_warehouses)
        home_warehouse[mask] = options[rng.integers(0, options.size, mask.sum())]
    first_idx = rng.integers(0, len(_FIRST_NAMES), n_customers)
    last_idx = rng.integers(0, len(_LAST_NAMES), n_customers)
    preferred_channel = rng.choice(len(CHANNELS), size=n_customers, p=_CHANNEL_WEIGHTS)
    z_rate = rng.standard_normal(n_customers)
    size_factor = np.exp(0.25 * z_rate + 0.35 * rng.standard_normal(n_customers))  # frequent buyers also buy more per line
    initial_walk = rng.normal(0.0, _WALK_SD / math.sqrt(1 - _WALK_PHI**2), n_customers)

    ids = _ids("C", np.arange(1, n_customers + 1), 5)
    names = pl.DataFrame({"f": _gather(_FIRST_NAMES, first_idx), "l": _gather(_LAST_NAMES, last_idx), "id": ids})
    names = names.select(
        name=pl.col("f").str.to_titlecase() + pl.lit(" ") + pl.col("l").str.to_titlecase(),
        email=pl.col("f") + pl.lit(".") + pl.col("l") + pl.lit(".") + pl.col("id").str.slice(1) + pl.lit("@example.com"),
        first=pl.col("f").str.to_titlecase(),
    )
    return _Customers(
        ids=ids,
        names=names["name"],
        emails=names["email"],
        first_names=names["first"],
        region=region,
        home_warehouse=home_warehouse,
        preferred_channel=preferred_channel,
        log_base_rate=_BASE_RATE_SD * z_rate,
        size_factor=size_factor,
        initial_walk=initial_walk,
    )


@dataclass(frozen=True)
class _Warehouses:
    """Where orders ship from: each warehouse's region and its daily capacity (beyond it, lines come late)."""

    ids: pl.Series
    region: np.ndarray
    capacity: np.ndarray  # order lines per day

    def truth(self) -> pl.DataFrame:
        return pl.DataFrame(
            {"warehouse_id": self.ids, "region": _gather(REGIONS, self.region), "capacity_lines_per_day": self.capacity}
        )


def _warehouses(config: SimulationConfig, rng: np.random.Generator, customers: _Customers) -> _Warehouses:
    """Capacity follows the weekday volume the customers' home warehouses are expected to get."""
    n_warehouses = config.n_warehouses
    log_base = customers.log_base_rate
    base_share = np.exp(log_base) / np.exp(log_base).sum()
    share = (_HOME_WAREHOUSE_P * np.bincount(customers.home_warehouse, weights=base_share, minlength=n_warehouses)
             + (1 - _HOME_WAREHOUSE_P) / n_warehouses)
    weekday_level = _WEEKLY[:5].mean()
    capacity = np.maximum(
        config.order_lines_per_day * share * weekday_level * _CAPACITY_FACTOR * rng.uniform(0.9, 1.1, n_warehouses), 1.0
    )
    return _Warehouses(ids=_ids("W", np.arange(1, n_warehouses + 1), 2), region=_warehouse_regions(n_warehouses),
                       capacity=capacity)


# ---- the world around the trade: weather, holidays, promotions ------------------------------


@dataclass(frozen=True)
class _Weather:
    """Each region's weather per horizon day (days x regions); storms delay shipments."""

    temperature: np.ndarray
    precipitation: np.ndarray
    storm: np.ndarray
    storms_before: np.ndarray  # [t, r]: storm days in region r before day t (one row more than the horizon)


def _weather(timeline: _Timeline, rng: np.random.Generator) -> _Weather:
    """A yearly temperature cycle with AR(1) noise; storms a Markov chain, likelier in winter."""
    horizon, n_regions = timeline.horizon, len(REGIONS)
    winter = np.cos(2 * np.pi * (timeline.day_of_year - 20) / 365.25)
    temp = _REGION_TEMP_BASE[None, :] - _REGION_TEMP_AMP[None, :] * winter[:, None]
    noise = np.empty((horizon, n_regions))
    eps = rng.normal(0.0, 2.5, (horizon, n_regions))
    noise[0] = eps[0] / math.sqrt(1 - 0.7**2)
    storm = np.zeros((horizon, n_regions), dtype=bool)
    p_start = 0.028 * (1 + 0.6 * winter)
    u = rng.random((horizon, n_regions))
    storm[0] = u[0] < p_start[0] * 1.5
    for t in range(1, horizon):
        noise[t] = 0.7 * noise[t - 1] + eps[t]
        storm[t] = np.where(storm[t - 1], u[t] < 0.35, u[t] < p_start[t])
    temp = np.round(temp + noise, 1) + 0.0
    rainy = rng.random((horizon, n_regions)) < (0.4 + 0.1 * winter[:, None])
    precip = np.where(storm, 15.0 + rng.gamma(2.0, 10.0, (horizon, n_regions)),
                      np.where(rainy, rng.gamma(0.8, 5.0, (horizon, n_regions)), 0.0))
    precip = np.round(precip, 1) + 0.0
    return _Weather(
        temperature=temp,
        precipitation=precip,
        storm=storm,
        storms_before=np.vstack([np.zeros((1, n_regions), dtype=np.int64), np.cumsum(storm, axis=0)]),
    )


@dataclass(frozen=True)
class _Holidays:
    """The holidays in the horizon, by date then region: customers order less, shipments take longer."""

    day: np.ndarray
    region: np.ndarray
    name: list[str]
    on: np.ndarray  # [t, r]: day t is a holiday in region r
    holidays_before: np.ndarray  # [t, r]: holidays in region r before day t (one row more than the horizon)


def _holidays(config: SimulationConfig, timeline: _Timeline) -> _Holidays:
    last_day = config.start_date + datetime.timedelta(days=timeline.horizon - 1)
    calendar = _holiday_calendar(config.seed, range(config.start_date.year, last_day.year + 1))
    calendar = [(d, r, n) for d, r, n in calendar if config.start_date <= d <= last_day]
    calendar.sort(key=lambda x: (x[0], x[1]))
    day = np.array([(d - config.start_date).days for d, _, _ in calendar], dtype=np.int64)
    region = np.array([r for _, r, _ in calendar], dtype=np.int64)
    on = np.zeros((timeline.horizon, len(REGIONS)), dtype=bool)
    on[day, region] = True
    return _Holidays(
        day=day,
        region=region,
        name=[n for _, _, n in calendar],
        on=on,
        holidays_before=np.vstack([np.zeros((1, len(REGIONS)), dtype=np.int64), np.cumsum(on, axis=0)]),
    )


@dataclass(frozen=True)
class _Promotions:
    """Each product's promotion windows: its discount lifts demand and line quantities."""

    discount: np.ndarray  # [t, p]: discount of product p on day t, 0 outside its promotions
    windows: pl.DataFrame  # one row per promotion (the promotions truth frame)


def _promotions(timeline: _Timeline, rng: np.random.Generator, catalogue: _Catalogue) -> _Promotions:
    horizon, n_products = timeline.horizon, catalogue.supplier.size
    discount = np.zeros((horizon, n_products))
    rows: list[tuple[int, int, int, float]] = []
    for p in range(n_products):
        t = -int(rng.integers(0, 60))
        while True:
            t += int(rng.integers(20, 91))
            if t >= horizon:
                break
            length = int(rng.integers(5, 15))
            disc = float(rng.choice(_PROMO_DISCOUNTS))
            lo, hi = max(t, 0), min(t + length, horizon)
            if hi > lo:
                discount[lo:hi, p] = disc
                rows.append((p, t, t + length - 1, disc))
            t += length
    table = np.array(rows, dtype=np.float64).reshape(-1, 4)
    windows = pl.DataFrame(
        {
            "product_id": catalogue.ids.gather(table[:, 0].astype(np.int64)),
            "start_date": _dates(timeline.epoch_day, table[:, 1].astype(np.int64)),
            "end_date": _dates(timeline.epoch_day, table[:, 2].astype(np.int64)),
            "discount_pct": table[:, 3],
        }
    )
    return _Promotions(discount=discount, windows=windows)


# ---- the trade: orders, their fulfilment and the tickets they raise -------------------------


@dataclass(frozen=True)
class _Orders:
    """One row per order (each is one shipment), by order number."""

    day: np.ndarray
    number: np.ndarray
    customer: np.ndarray
    second: np.ndarray  # time of day of the order
    warehouse: np.ndarray
    channel: np.ndarray  # index into CHANNELS; len(CHANNELS) is the drift's new channel
    delay_events: np.ndarray
    tracker_second: np.ndarray  # the tracker's reading, on the dispatch day (the day after the order)
    tracker_temperature: np.ndarray = field(metadata={"dtype": np.float64})


@dataclass(frozen=True)
class _Lines:
    """One row per order line, in the order of the transactions: what was ordered and whether it came late."""

    order: np.ndarray  # order number
    day: np.ndarray
    customer: np.ndarray
    line_number: np.ndarray = field(metadata={"dtype": np.int32})
    product: np.ndarray
    discount: np.ndarray = field(metadata={"dtype": np.float64})
    quantity: np.ndarray = field(metadata={"dtype": np.int32})
    lead: np.ndarray  # days from the order to the promised date
    reliability: np.ndarray = field(metadata={"dtype": np.float64})  # the supplier's, drift included
    load: np.ndarray = field(metadata={"dtype": np.float64})
    storm_in_transit: np.ndarray = field(metadata={"dtype": bool})
    holiday_in_window: np.ndarray = field(metadata={"dtype": bool})
    delay_events: np.ndarray = field(metadata={"dtype": np.int32})
    late_score: np.ndarray = field(metadata={"dtype": np.float64})
    late_probability: np.ndarray = field(metadata={"dtype": np.float64})
    is_late: np.ndarray = field(metadata={"dtype": bool})
    delivered: np.ndarray
    reported: np.ndarray  # the day the ERP reports the delivery
    quantity_delivered: np.ndarray = field(metadata={"dtype": np.int32})


@dataclass(frozen=True)
class _TicketEvents:
    """Tickets raised, before their text is written: who, on which day, what kind (_KINDS), about which order
    (order number, or not positive for none)."""

    customer: np.ndarray
    day: np.ndarray
    kind: np.ndarray
    order: np.ndarray


_Stacked = TypeVar("_Stacked", _Orders, _Lines, _TicketEvents)


def _stack(kind: type[_Stacked], parts: list[_Stacked]) -> _Stacked:
    """The parts' rows end to end, each column in its field's dtype (int64 unless the field says)."""

    def column(name: str, dtype: Any) -> np.ndarray:
        arrays = [getattr(part, name) for part in parts]
        return np.concatenate(arrays).astype(dtype, copy=False) if arrays else np.zeros(0, dtype=dtype)

    return kind(**{f.name: column(f.name, f.metadata.get("dtype", np.int64)) for f in fields(kind)})


@dataclass(frozen=True)
class _OrderBook:
    """The window's trade, and what it did to the customers' purchase rates."""

    orders: _Orders
    lines: _Lines
    ticket_events: _TicketEvents
    daily_rate: np.ndarray  # [t, c]: customer c's expected orders on day t
    churn_log: np.ndarray  # each customer's log rate multiplier from negative tickets, at the end of the window
    negative_tickets: np.ndarray  # [t, c]: negative tickets customer c raised on day t


def _order_book(
    config: SimulationConfig,
    timeline: _Timeline,
    suppliers: _Suppliers,
    catalogue: _Catalogue,
    customers: _Customers,
    warehouses: _Warehouses,
    weather: _Weather,
    holidays: _Holidays,
    promotions: _Promotions,
    orders_rng: np.random.Generator,
    tickets_rng: np.random.Generator,
) -> _OrderBook:
    """Day after day: each customer's purchase rate, the day's orders and lines, their fulfilment, the tracker's
    readings and the tickets. One loop, because a negative ticket lowers its customer's rate from the next day on."""
    n_customers = config.customers
    orders_mean = config.order_lines_per_day / (1.0 + _MEAN_EXTRA_LINES)
    negative_tickets = np.zeros((timeline.horizon + 16, n_customers), dtype=np.int16)  # by created day
    last_order = np.full(n_customers, -1, dtype=np.int64)
    daily_rate = np.zeros((timeline.days, n_customers), dtype=np.float32)
    next_order = 1
    walk, churn_log = customers.initial_walk, np.zeros(n_customers)
    log_churn_factor, log_churn_floor = math.log(_CHURN_FACTOR), math.log(_CHURN_FLOOR)
    day_of_year = timeline.day_of_year
    yearly = 1.0 + _YEARLY_AMP * np.cos(2 * np.pi * (day_of_year - _YEARLY_PEAK_DOY) / 365.25)
    product_season = 1.0 + catalogue.season_amplitude[None, :] * np.sin(
        2 * np.pi * day_of_year[:, None] / 365.25 + catalogue.season_phase[None, :])
    promo_lift = 1.0 + _PROMO_LIFT_PER_DISCOUNT * promotions.discount
    orders: list[_Orders] = []
    lines: list[_Lines] = []
    ticket_events: list[_TicketEvents] = []

    for t in range(timeline.days):
        if t > 0:
            churn_log = np.maximum(churn_log + log_churn_factor * negative_tickets[t - 1], log_churn_floor)
        walk = _WALK_PHI * walk + orders_rng.normal(0.0, _WALK_SD, n_customers)
        rate = np.exp(customers.log_base_rate + walk + churn_log)
        weight = rate * np.where(holidays.on[t, customers.region], _HOLIDAY_DEMAND, 1.0)
        total_weight = weight.sum()
        day_mean = (orders_mean * _WEEKLY[timeline.weekday[t]] * yearly[t] * (total_weight / rate.sum())
                    * orders_rng.lognormal(0.0, 0.05))
        daily_rate[t] = weight / total_weight * day_mean
        n_orders = int(orders_rng.poisson(day_mean))
        cum_weight = np.cumsum(weight)

        questions = _questions(t, tickets_rng, cum_weight, total_weight, last_order, config.ticket_rate)
        if questions is not None:
            ticket_events.append(questions)
        if n_orders == 0:
            continue

        day = _day_orders(t, n_orders, next_order, orders_rng, cum_weight, total_weight, customers, catalogue,
                          warehouses, product_season[t], promo_lift[t], promotions.discount[t], timeline)
        next_order += n_orders
        np.maximum.at(last_order, day.customer, day.number)
        fulfilment = _day_fulfilment(t, orders_rng, day, suppliers, catalogue, warehouses, weather, holidays,
                                     config.drift, timeline)
        tracker_second, tracker_temperature = _tracker_readings(t, orders_rng, day, weather)
        raised = _order_tickets(tickets_rng, day, fulfilment, config.ticket_rate)
        if raised is not None:
            ticket_events.append(raised)
            negative = _KIND_SENTIMENT[raised.kind] == 0
            np.add.at(negative_tickets, (raised.day[negative], raised.customer[negative]), 1)

        orders.append(_Orders(
            day=np.full(n_orders, t),
            number=day.number,
            customer=day.customer,
            second=day.second,
            warehouse=day.warehouse,
            channel=day.channel,
            delay_events=fulfilment.delay_events,
            tracker_second=tracker_second,
            tracker_temperature=tracker_temperature,
        ))
        of_line = day.order_of_line
        lines.append(_Lines(
            order=day.number[of_line],
            day=np.full(of_line.size, t),
            customer=day.customer[of_line],
            line_number=day.line_number,
            product=day.product,
            discount=day.discount,
            quantity=day.quantity,
            lead=fulfilment.lead,
            reliability=fulfilment.reliability,
            load=fulfilment.load[of_line],
            storm_in_transit=fulfilment.storm_in_transit,
            holiday_in_window=fulfilment.holiday_in_window,
            delay_events=fulfilment.delay_events[of_line],
            late_score=fulfilment.late_score,
            late_probability=fulfilment.late_probability,
            is_late=fulfilment.is_late,
            delivered=fulfilment.delivered,
            reported=fulfilment.reported,
            quantity_delivered=fulfilment.quantity_delivered,
        ))

    return _OrderBook(
        orders=_stack(_Orders, orders),
        lines=_stack(_Lines, lines),
        ticket_events=_stack(_TicketEvents, ticket_events),
        daily_rate=daily_rate,
        churn_log=churn_log,
        negative_tickets=negative_tickets,
    )


def _questions(t: int, rng: np.random.Generator, cum_weight: np.ndarray, total_weight: float,
               last_order: np.ndarray, rate: float) -> _TicketEvents | None:
    """Neutral questions from active customers, independent of the day's orders (half about their last order)."""
    n_customers = last_order.size
    n_questions = int(rng.poisson(_TICKET["question_per_customer_day"] * rate * n_customers))
    if not n_questions:
        return None
    customer = np.minimum(np.searchsorted(cum_weight, rng.random(n_questions) * total_weight, side="right"),
                          n_customers - 1)
    order = np.where(rng.random(n_questions) < 0.5, last_order[customer], -1)
    return _TicketEvents(customer=customer, day=np.full(n_questions, t), kind=np.full(n_questions, 4), order=order)


@dataclass(frozen=True)
class _DayOrders:
    """One day's orders (sorted by time of day) and their lines: who ordered what, how many, from where, how."""

    customer: np.ndarray
    second: np.ndarray
    number: np.ndarray
    region: np.ndarray  # the customer's
    warehouse: np.ndarray
    channel: np.ndarray
    first_line: np.ndarray  # per order, the index of its first line
    order_of_line: np.ndarray  # per line, the index of its order
    line_number: np.ndarray
    product: np.ndarray
    discount: np.ndarray
    quantity: np.ndarray


def _day_orders(t: int, n_orders: int, first_number: int, rng: np.random.Generator, cum_weight: np.ndarray,
                total_weight: float, customers: _Customers, catalogue: _Catalogue, warehouses: _Warehouses,
                season: np.ndarray, promo_lift: np.ndarray, discount_today: np.ndarray,
                timeline: _Timeline) -> _DayOrders:
    """Customers in proportion to their rate; products in proportion to their demand of the day."""
    n_customers, n_products, n_warehouses = cum_weight.size, catalogue.supplier.size, warehouses.capacity.size
    customer = np.minimum(np.searchsorted(cum_weight, rng.random(n_orders) * total_weight, side="right"), n_customers - 1)
    second = np.clip(rng.normal(13.5 * 3600, 3.5 * 3600, n_orders), 0, 86399).astype(np.int64)
    by_time = np.argsort(second, kind="stable")
    customer, second = customer[by_time], second[by_time]
    number = first_number + np.arange(n_orders, dtype=np.int64)

    lines_per_order = 1 + np.minimum(rng.poisson(_MEAN_EXTRA_LINES, n_orders), _MAX_LINES - 1)
    n_lines = int(lines_per_order.sum())
    first_line = np.cumsum(lines_per_order) - lines_per_order
    order_of_line = np.repeat(np.arange(n_orders), lines_per_order)
    line_number = np.arange(n_lines) - np.repeat(first_line, lines_per_order) + 1

    weight = catalogue.popularity * season * promo_lift * rng.lognormal(0.0, 0.15, n_products)
    cum = np.cumsum(weight)
    product = np.minimum(np.searchsorted(cum, rng.random(n_lines) * cum[-1], side="right"), n_products - 1)
    discount = discount_today[product]
    size = customers.size_factor[customer[order_of_line]]
    quantity = 1 + rng.poisson((catalogue.mean_quantity[product] - 1.0) * size * np.where(discount > 0, _PROMO_QTY, 1.0))
    quantity = np.minimum(quantity, _MAX_QTY)

    warehouse = np.where(rng.random(n_orders) < _HOME_WAREHOUSE_P, customers.home_warehouse[customer],
                         rng.integers(0, n_warehouses, n_orders))
    channel = np.where(rng.random(n_orders) < _PREFERRED_CHANNEL_P, customers.preferred_channel[customer],
                       rng.integers(0, len(CHANNELS), n_orders))
    if timeline.drifted(t):
        channel = np.where(rng.random(n_orders) < _NEW_CHANNEL_SHARE, len(CHANNELS), channel)
    return _DayOrders(
        customer=customer,
        second=second,
        number=number,
        region=customers.region[customer],
        warehouse=warehouse,
        channel=channel,
        first_line=first_line,
        order_of_line=order_of_line,
        line_number=line_number,
        product=product,
        discount=discount,
        quantity=quantity,
    )


@dataclass(frozen=True)
class _DayFulfilment:
    """How one day's orders were shipped: per order the warehouse load and delay events, per line the late model
    (score, probability, draw) and the promised, delivered and reported days."""

    load: np.ndarray  # per order: lines at its warehouse that day / capacity
    delay_events: np.ndarray  # per order
    lead: np.ndarray
    reliability: np.ndarray
    storm_in_transit: np.ndarray
    holiday_in_window: np.ndarray
    late_score: np.ndarray
    late_probability: np.ndarray
    is_late: np.ndarray
    promised: np.ndarray
    delivered: np.ndarray
    reported: np.ndarray
    quantity_delivered: np.ndarray


def _day_fulfilment(t: int, rng: np.random.Generator, day: _DayOrders, suppliers: _Suppliers, catalogue: _Catalogue,
                    warehouses: _Warehouses, weather: _Weather, holidays: _Holidays, drift: DriftScenario | None,
                    timeline: _Timeline) -> _DayFulfilment:
    """The late-delivery model (module docstring): supplier, warehouse load, storms, holidays, delay events."""
    of_line = day.order_of_line
    n_orders, n_lines = day.number.size, of_line.size
    line_warehouse = day.warehouse[of_line]
    order_region = day.region
    line_region = order_region[of_line]
    supplier = catalogue.supplier[day.product]
    lead = suppliers.lead_days[supplier] + (warehouses.region[line_warehouse] != line_region) + (rng.random(n_lines) < 0.3)
    lead = np.clip(lead, 2, 5)

    warehouse_load = np.clip(np.bincount(line_warehouse, minlength=warehouses.capacity.size) / warehouses.capacity,
                             0.0, 3.0)
    load = warehouse_load[day.warehouse]
    storm_on_dispatch = weather.storm[t, order_region] | weather.storm[t + 1, order_region]
    g = rng.gamma(_DELAY["gamma_shape"], 1.0 / _DELAY["gamma_shape"], n_orders)
    delay_events = rng.poisson(
        g * (_DELAY["base"] + _DELAY["storm"] * storm_on_dispatch
             + _DELAY["load"] * np.maximum(load - _DELAY["load_ref"], 0.0))
    )
    storms = weather.storms_before
    storm_in_transit = (storms[t + 1 + lead, line_region] - storms[t + 1, line_region]) > 0
    hols = holidays.holidays_before
    holiday_in_window = (hols[t + 1 + lead, line_region] - hols[t + 1, line_region]) > 0
    reliability = suppliers.reliability[supplier]
    if drift is not None and timeline.drifted(t):
        reliability = np.where(supplier == int(drift.degraded_supplier_id[1:]) - 1, drift.degraded_reliability,
                               reliability)
    score = (
        _LATE["intercept"]
        + _LATE["unreliability"] * (catalogue.reliability_ref - reliability)
        + _LATE["load"] * (load[of_line] - 1.0)
        + _LATE["storm_in_transit"] * storm_in_transit
        + _LATE["holiday_in_window"] * holiday_in_window
        + _LATE["delay_events"] * np.minimum(delay_events[of_line], _LATE["delay_cap"])
    )
    if drift is not None and timeline.drifted(t):
        score = score + drift.new_channel_late_shift * (day.channel[of_line] == len(CHANNELS))
    late_probability = 1.0 / (1.0 + np.exp(-score))
    is_late = rng.random(n_lines) < late_probability
    days_late = np.minimum(rng.geometric(0.45, n_lines), 6)
    early = np.minimum(rng.geometric(0.65, n_lines) - 1, lead - 1)
    promised = t + lead
    delivered = np.where(is_late, promised + days_late, promised - early)
    reported = delivered + (rng.random(n_lines) < _ERP_LAG_P)
    short = rng.random(n_lines) < _SHORT_DELIVERY_P
    quantity_delivered = np.where(short, np.floor(day.quantity * rng.random(n_lines)).astype(np.int64), day.quantity)
    return _DayFulfilment(
        load=load,
        delay_events=delay_events,
        lead=lead,
        reliability=reliability,
        storm_in_transit=storm_in_transit,
        holiday_in_window=holiday_in_window,
        late_score=score,
        late_probability=late_probability,
        is_late=is_late,
        promised=promised,
        delivered=delivered,
        reported=reported,
        quantity_delivered=quantity_delivered,
    )


def _tracker_readings(t: int, rng: np.random.Generator, day: _DayOrders,
                      weather: _Weather) -> tuple[np.ndarray, np.ndarray]:
    """Each shipment's tracker reading on the dispatch day: time of day and the temperature it recorded."""
    n_orders = day.number.size
    second = rng.integers(6 * 3600, 22 * 3600, n_orders)
    temperature = np.round(0.5 * weather.temperature[t + 1, day.region] + 10.0 + rng.normal(0.0, 2.0, n_orders), 1) + 0.0
    return second, temperature


def _order_tickets(rng: np.random.Generator, day: _DayOrders, fulfilment: _DayFulfilment,
                   rate: float) -> _TicketEvents | None:
    """Tickets about the day's orders: complaints and where-is-my-order when late, praise or damaged goods when not."""
    n_orders = day.number.size
    lateness = np.maximum.reduceat(fulfilment.delivered - fulfilment.promised, day.first_line)
    last_delivered = np.maximum.reduceat(fulfilment.delivered, day.first_line)
    u = rng.random(n_orders)
    p_complaint = np.minimum(_TICKET["late_base"] + _TICKET["late_per_day"] * lateness, _TICKET["late_max"]) * rate
    p_praise, p_damaged = _TICKET["positive_p"] * rate, _TICKET["damaged_p"] * rate
    late = lateness > 0
    complaint = late & (u < p_complaint)
    praise = ~late & (u < p_praise)
    damaged = ~late & (u >= p_praise) & (u < p_praise + p_damaged)
    kind = np.full(n_orders, -1)
    kind[complaint] = np.where(rng.random(int(complaint.sum())) < _TICKET["late_negative_share"], 0, 1)
    kind[praise] = 3
    kind[damaged] = 2
    raised = kind >= 0
    if not raised.any():
        return None
    # complaints come while waiting (between the promised and the delivered day), the others on delivery or soon after
    created = np.where(
        complaint,
        last_delivered - np.floor(rng.random(n_orders) * np.maximum(lateness, 1)).astype(np.int64),
        last_delivered + rng.integers(0, 3, n_orders),
    )[raised]
    return _TicketEvents(customer=day.customer[raised], day=created, kind=kind[raised], order=day.number[raised])


# ---- landing sources and truth, rendered from the sub-models --------------------------------


def _transactions(config: SimulationConfig, timeline: _Timeline, book: _OrderBook, order_ids: pl.Series,
                  suppliers: _Suppliers, catalogue: _Catalogue, customers: _Customers,
                  warehouses: _Warehouses) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The transactions (one row per order line) and the line truth, row-aligned with them."""
    orders, lines, drift, epoch = book.orders, book.lines, config.drift, timeline.epoch_day
    position = lines.order - 1  # order numbers are 1..n, consecutive
    supplier = catalogue.supplier[lines.product]
    price = catalogue.base_price[lines.product]
    if drift is not None and timeline.drift_day is not None:
        shifted = np.round(catalogue.base_price[lines.product] * drift.price_shift, 2)
        price = np.where(lines.day >= timeline.drift_day, shifted, price)
    channels = list(CHANNELS) + ([drift.new_channel] if drift is not None else [])
    transactions = pl.DataFrame(
        {
            "order_id": order_ids.gather(position),
            "line_number": lines.line_number,
            "ordered_at": _timestamps(epoch, lines.day, orders.second[position]),
            "customer_id": customers.ids.gather(lines.customer),
            "customer_name": customers.names.gather(lines.customer),
            "customer_email": customers.emails.gather(lines.customer),
            "region": _gather(REGIONS, customers.region[lines.customer]),
            "product_id": catalogue.ids.gather(lines.product),
            "warehouse_id": warehouses.ids.gather(orders.warehouse[position]),
            "supplier_id": suppliers.ids.gather(supplier),
            "quantity": lines.quantity,
            "unit_price": price,
            "discount_pct": lines.discount,
            "promised_date": _dates(epoch, lines.day + lines.lead),
            "channel": _gather(channels, orders.channel[position]),
        }
    )
    line_truth = pl.DataFrame(
        {
            "order_id": transactions["order_id"],
            "line_number": transactions["line_number"],
            "order_date": _dates(epoch, lines.day),
            "supplier_reliability": lines.reliability,
            "base_supplier_reliability": suppliers.reliability[supplier],
            "warehouse_load": lines.load,
            "storm_in_transit": lines.storm_in_transit,
            "holiday_in_window": lines.holiday_in_window,
            "delay_events": lines.delay_events,
            "promo": lines.discount > 0,
            "late_score": lines.late_score,
            "late_probability": lines.late_probability,
            "is_late": lines.is_late,
            "days_late": np.maximum(lines.delivered - (lines.day + lines.lead), 0).astype(np.int32),
            "delivered_date": _dates(epoch, lines.delivered),
            "report_date": _dates(epoch, lines.reported),
            "reported_in_window": lines.reported < timeline.days,
            "quantity_delivered": lines.quantity_delivered,
        }
    )
    return transactions, line_truth


def _deliveries(timeline: _Timeline, lines: _Lines, order_ids: pl.Series) -> tuple[pl.DataFrame, np.ndarray]:
    """Deliveries as the ERP reports them, on their report day; reports after the window are absent."""
    in_window = np.flatnonzero(lines.reported < timeline.days)
    sel = in_window[np.lexsort((lines.line_number[in_window], lines.order[in_window], lines.reported[in_window]))]
    deliveries = pl.DataFrame(
        {
            "order_id": order_ids.gather(lines.order[sel] - 1),
            "line_number": lines.line_number[sel],
            "delivered_date": _dates(timeline.epoch_day, lines.delivered[sel]),
            "quantity_delivered": lines.quantity_delivered[sel],
        }
    )
    return deliveries, lines.reported[sel].astype(np.int32)


def _telemetry(timeline: _Timeline, orders: _Orders, order_ids: pl.Series,
               customers: _Customers) -> tuple[pl.DataFrame, np.ndarray]:
    """One tracker reading per shipment, on its dispatch day (the day after the order)."""
    dispatch = orders.day + 1
    sel = np.flatnonzero(dispatch < timeline.days)
    sel = sel[np.lexsort((orders.number[sel], orders.tracker_second[sel], dispatch[sel]))]
    telemetry = pl.DataFrame(
        {
            "event_id": _ids("EV", np.arange(1, sel.size + 1), 9),
            "shipment_id": _ids("SH", orders.number[sel], 8),
            "order_id": order_ids.gather(sel),
            "recorded_at": _timestamps(timeline.epoch_day, dispatch[sel], orders.tracker_second[sel]),
            "region": _gather(REGIONS, customers.region[orders.customer[sel]]),
            "temperature_c": orders.tracker_temperature[sel],
            "delay_events": orders.delay_events[sel].astype(np.int32),
        }
    )
    return telemetry, dispatch[sel].astype(np.int32)


def _overrides(timeline: _Timeline, lines: _Lines, transactions: pl.DataFrame,
               rng: np.random.Generator) -> tuple[pl.DataFrame, np.ndarray, pl.DataFrame]:
    """Operators' overrides of the late-delivery prediction, made on the lines' dispatch day; their label is right
    most of the time (``_OVERRIDE``). Returns the overrides, their days and their truth."""
    n_lines = lines.order.size
    dispatch = lines.day + 1
    picked = rng.random(n_lines) < _OVERRIDE["share"]
    correct = rng.random(n_lines) < _OVERRIDE["label_accuracy"]
    second = rng.integers(7 * 3600, 20 * 3600, n_lines)
    operator = rng.integers(1, _OVERRIDE["operators"] + 1, n_lines)
    reason_draw = rng.integers(0, 1 << 30, n_lines)
    sel = np.flatnonzero(picked & (dispatch < timeline.days))
    sel = sel[np.lexsort((second[sel], dispatch[sel]))]
    label = np.where(correct[sel], lines.is_late[sel], ~lines.is_late[sel])
    n_late_reasons, n_on_time_reasons = len(_OVERRIDE["reasons_late"]), len(_OVERRIDE["reasons_on_time"])
    reason = np.where(label, reason_draw[sel] % n_late_reasons, n_late_reasons + reason_draw[sel] % n_on_time_reasons)
    override_ids = _ids("OV", np.arange(1, sel.size + 1), 8)
    overrides = pl.DataFrame(
        {
            "override_id": override_ids,
            "created_at": _timestamps(timeline.epoch_day, dispatch[sel], second[sel]),
            "use_case": _gather(("late_delivery",), np.zeros(sel.size)),
            "entity_id": transactions.select(
                pl.col("order_id") + pl.lit("-") + pl.col("line_number").cast(pl.String)
            ).to_series().gather(sel),
            "operator_id": _ids("OP", operator[sel], 2),
            "override_label": label,
            "reason": _gather(_OVERRIDE["reasons_late"] + _OVERRIDE["reasons_on_time"], reason),
        }
    )
    override_truth = pl.DataFrame(
        {
            "override_id": override_ids,
            "order_id": transactions["order_id"].gather(sel),
            "line_number": transactions["line_number"].gather(sel),
            "is_late": lines.is_late[sel],
            "label_correct": correct[sel],
        }
    )
    return overrides, dispatch[sel].astype(np.int32), override_truth


def _tickets(timeline: _Timeline, events: _TicketEvents, customers: _Customers,
             rng: np.random.Generator) -> tuple[pl.DataFrame, np.ndarray, pl.DataFrame]:
    """The tickets created in the window, with a time, a contact channel and a text written from the kind's phrases.
    Returns the tickets, their days and their truth (sentiment, kind)."""
    n_events = events.customer.size
    second = rng.integers(7 * 3600, 22 * 3600, n_events)
    contact = rng.choice(len(CONTACT_CHANNELS), size=n_events, p=[0.5, 0.3, 0.2])
    phrase_draw = rng.integers(0, 1 << 30, (n_events, 5))
    sel = np.flatnonzero(events.day < timeline.days)
    sel = sel[np.lexsort((events.customer[sel], second[sel], events.day[sel]))]
    customer, day, kind, order = events.customer[sel], events.day[sel], events.kind[sel], events.order[sel]
    pick = phrase_draw[sel]
    subject = np.empty(kind.size, dtype=object)
    parts = {name: np.empty(kind.size, dtype=object) for name in ("open", "mid", "close")}
    for kind_code in range(len(_KINDS)):
        m = kind == kind_code
        if not m.any():
            continue
        for name, table, col in (
            ("subj", _SUBJECTS, 1), ("open", _OPENINGS, 1), ("mid", _MIDDLES, 2), ("close", _CLOSINGS, 3)
        ):
            options = np.array(table[kind_code], dtype=object)
            chosen = options[pick[m, col] % len(options)]
            if name == "subj":
                subject[m] = chosen
            else:
                parts[name][m] = chosen
    signoff = np.array(_SIGNOFFS, dtype=object)[pick[:, 4] % len(_SIGNOFFS)] if kind.size else np.empty(0, dtype=object)
    has_order = order > 0
    order_str = pl.Series("x", np.where(has_order, order, 0)).cast(pl.String).str.zfill(8)
    order_id = pl.select(
        pl.when(pl.Series("h", has_order)).then(pl.lit("O") + order_str).otherwise(None).alias("x")
    ).to_series()
    text = pl.DataFrame(
        {
            "oid": order_id,
            "subj": pl.Series("s", subject.tolist(), dtype=pl.String),
            "open": pl.Series("o", parts["open"].tolist(), dtype=pl.String),
            "mid": pl.Series("m", parts["mid"].tolist(), dtype=pl.String),
            "close": pl.Series("c", parts["close"].tolist(), dtype=pl.String),
            "sign": pl.Series("g", signoff.tolist(), dtype=pl.String),
            "first": customers.first_names.gather(customer),
        }
    )
    body = text.select(
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
    ticket_ids = _ids("T", np.arange(1, kind.size + 1), 8)
    tickets = pl.DataFrame(
        {
            "ticket_id": ticket_ids,
            "created_at": _timestamps(timeline.epoch_day, day, second[sel]),
            "customer_id": customers.ids.gather(customer),
            "customer_email": customers.emails.gather(customer),
            "order_id": order_id,
            "contact_channel": _gather(CONTACT_CHANNELS, contact[sel]),
            "subject": text["subj"],
            "body": body,
        }
    )
    ticket_truth = pl.DataFrame(
        {
            "ticket_id": ticket_ids,
            "customer_id": tickets["customer_id"],
            "created_date": _dates(timeline.epoch_day, day),
            "sentiment": _gather(_SENTIMENTS, _KIND_SENTIMENT[kind]),
            "kind": _gather(_KINDS, kind),
        }
    )
    return tickets, day.astype(np.int32), ticket_truth


def _published_holidays(timeline: _Timeline,
                        holidays: _Holidays) -> tuple[pl.DataFrame, np.ndarray, pl.DataFrame]:
    """The holidays as published: each day of the window lists the holidays of the next two weeks. Returns the
    published rows, their days and the whole calendar (truth)."""
    # holiday h is published on days D in [day - 13, day] within the window
    day, region, name = holidays.day, holidays.region, holidays.name
    published_from = np.maximum(day - 13, 0)
    published_to = np.minimum(day, timeline.days - 1)
    n_published = np.maximum(published_to - published_from + 1, 0)
    holiday = np.repeat(np.arange(day.size), n_published)
    published = published_from[holiday] + (np.arange(holiday.size)
                                           - np.repeat(np.cumsum(n_published) - n_published, n_published))
    by_day = np.lexsort((region[holiday], day[holiday], published))
    holiday, published = holiday[by_day], published[by_day]
    frame = pl.DataFrame(
        {
            "published_date": _dates(timeline.epoch_day, published),
            "holiday_date": _dates(timeline.epoch_day, day[holiday]),
            "region": _gather(REGIONS, region[holiday]),
            "holiday_name": _gather(name, holiday) if name else pl.Series("x", [], dtype=pl.String),
        }
    )
    calendar = pl.DataFrame(
        {
            "holiday_date": _dates(timeline.epoch_day, day),
            "region": _gather(REGIONS, region),
            "holiday_name": pl.Series("x", name, dtype=pl.String),
        }
    )
    return frame, published.astype(np.int32), calendar


def _weather_reports(timeline: _Timeline, weather: _Weather) -> tuple[pl.DataFrame, np.ndarray]:
    """One weather row per region and day of the window."""
    n_days, n_regions = timeline.days, len(REGIONS)
    day = np.repeat(np.arange(n_days), n_regions)
    frame = pl.DataFrame(
        {
            "weather_date": _dates(timeline.epoch_day, day),
            "region": _gather(REGIONS, np.tile(np.arange(n_regions), n_days)),
            "temperature_c": weather.temperature[:n_days].reshape(-1),
            "precipitation_mm": weather.precipitation[:n_days].reshape(-1),
            "storm": weather.storm[:n_days].reshape(-1),
        }
    )
    return frame, day.astype(np.int32)


def _parameters(config: SimulationConfig, timeline: _Timeline, catalogue: _Catalogue, book: _OrderBook,
                line_truth: pl.DataFrame) -> dict[str, Any]:
    """The hidden model's parameters and a few outcomes (``SimulatedData.truth``)."""
    drift = config.drift
    n_lines = int(book.lines.order.size)
    return {
        "late_model": {**_LATE, "reliability_ref": catalogue.reliability_ref},
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
        "n_customers": config.customers,
        "n_orders": book.orders.number.size,
        "n_lines": n_lines,
        "late_rate": float(line_truth["is_late"].mean()) if n_lines else 0.0,
        "drift": None
        if drift is None
        else {
            "start_date": drift.start_date.isoformat(),
            "start_day": timeline.drift_day,
            "degraded_supplier_id": drift.degraded_supplier_id,
            "degraded_reliability": drift.degraded_reliability,
            "new_channel": drift.new_channel,
            "new_channel_share": _NEW_CHANNEL_SHARE,
            "new_channel_late_shift": drift.new_channel_late_shift,
            "price_shift": drift.price_shift,
        },
    }


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


#: The team that resolves a ticket the first line keeps, by kind (_KINDS); escalated ones go to second_line.
_DESK_TEAMS = ("delivery", "delivery", "quality", "customer_success", "customer_success")


def escalation_probability(kind: np.ndarray, phoned: np.ndarray) -> np.ndarray:
    """The support desk's chance of handing a ticket of ``kind`` (codes of ``_KINDS``) to a senior agent.

    Complaints (late, damaged or wrong goods) escalate more often than questions and praise, a call
    more often than a written ticket, and a complaint by phone most often: the text tells the kind,
    the contact channel as much again, so a model of both beats one of the words alone."""
    kind = np.asarray(kind)
    phoned = np.asarray(phoned, dtype=bool)
    complaint = np.isin(kind, [0, 2])
    logit = -3.5 + 0.8 * complaint + 0.4 * (kind == 1) + 2.0 * phoned + 1.5 * (complaint & phoned)
    return 1.0 / (1.0 + np.exp(-logit))


def _ticket_outcomes(config: SimulationConfig, timeline: _Timeline, tickets: pl.DataFrame, ticket_days: np.ndarray,
                     ticket_truth: pl.DataFrame) -> tuple[pl.DataFrame, np.ndarray]:
    """The desk's record of each ticket closed in the window: closed 0-2 days after it was created, 1-3
    days later when escalated. Its own random stream, so the other sources do not change with it."""
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 0xDE5C]))
    n = tickets.height
    kind = ticket_truth["kind"].replace_strict({k: i for i, k in enumerate(_KINDS)}, return_dtype=pl.Int64).to_numpy()
    phoned = (tickets["contact_channel"] == "phone").to_numpy()
    escalated = rng.random(n) < escalation_probability(kind, phoned)
    closed = np.asarray(ticket_days, dtype=np.int64) + rng.integers(0, 3, n) + escalated * rng.integers(1, 4, n)
    second = rng.integers(8 * 3600, 20 * 3600, n)
    sel = np.flatnonzero(closed < timeline.days)
    sel = sel[np.lexsort((sel, second[sel], closed[sel]))]
    teams = pl.Series("x", [*_DESK_TEAMS, "second_line"], dtype=pl.String)
    team = np.where(escalated, len(_DESK_TEAMS), kind)
    frame = pl.DataFrame({
        "ticket_id": tickets["ticket_id"].gather(sel),
        "closed_at": _timestamps(timeline.epoch_day, closed[sel], second[sel]),
        "escalated": pl.Series("x", escalated[sel], dtype=pl.Boolean),
        "resolved_by": teams.gather(team[sel]),
    })
    return frame, closed[sel].astype(np.int32)


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
    escalated = rng.random(n) < escalation_probability(kind, channel == CONTACT_CHANNELS.index("phone"))
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
