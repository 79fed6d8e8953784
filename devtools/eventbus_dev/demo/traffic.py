"""Realistic change traffic for the sample claims database.

The mix is what a claims system really produces: new claims, status progressions, updates that
matter to nobody (only `updated_at` moves), contentions added and classified, and the odd deletion
of a cancelled claim. Deterministic for a given seed, so a test can replay the same story.

Each status a claim reaches is also a `claim_lifecycle_status` row, written in the orders that make
lookups hard: in the same transaction as the new claim or the claim's update; in a transaction of
its own after the claim's update; and followed at once by another update of the claim (its station
moves), which an event looking the claim up as of the status row must not see.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Engine, create_engine, delete, func, select, text, update
from sqlalchemy.orm import Session

from eventbus_dev.demo.model import (
    ALTERNATIVE_OUTCOME,
    CONTENTION_CLASSIFICATIONS,
    END_PRODUCT_CODES,
    LIFECYCLE,
    STATIONS,
    Base,
    Claim,
    ClaimLifecycleStatus,
    Contention,
)

FollowUp = Callable[[Session], None]  # what an action leaves for a transaction of its own, right after

# Relative weights of the actions the generator draws from.
ACTION_WEIGHTS: dict[str, int] = {
    "new_claim": 20,
    "advance_status": 35,
    "touch_only": 20,
    "add_contention": 10,
    "classify_contention": 12,
    "delete_claim": 3,
}


def make_engine(url: str) -> Engine:
    return create_engine(url, pool_pre_ping=True)


def create_schema(engine: Engine, *, replica_identity_full: bool = True) -> None:
    """Create the tables (idempotent). Mappings read `before.*`, so `before` images must be full."""
    Base.metadata.create_all(engine)
    if replica_identity_full:
        with engine.begin() as conn:
            for table in Base.metadata.sorted_tables:
                conn.execute(text(f"alter table {table.fullname} replica identity full"))


@dataclass
class TrafficStats:
    actions: Counter[str] = field(default_factory=Counter)
    transactions: int = 0

    @property
    def changes(self) -> int:
        return sum(self.actions.values())


class ClaimsTraffic:
    """Draws actions and applies each in its own transaction, as the claims application would."""

    def __init__(self, engine: Engine, *, seed: int = 7, clock: datetime | None = None) -> None:
        self.engine = engine
        self.random = random.Random(seed)
        self.clock = clock or datetime(2026, 1, 5, 8, 0, 0)
        self.stats = TrafficStats()

    def _tick(self) -> datetime:
        self.clock += timedelta(
            seconds=self.random.randint(1, 90), microseconds=self.random.randint(0, 999_999)
        )
        return self.clock

    def new_claim(self, session: Session) -> None:
        veteran = self.random.randint(600_000_000, 600_999_999)
        # Most claims are filed by the Veteran; some by a dependant or survivor.
        claimant = veteran if self.random.random() < 0.8 else self.random.randint(700_000_000, 700_999_999)
        now = self._tick()
        claim = Claim(
            claim_type_code=self.random.choice(END_PRODUCT_CODES),
            benefit_type=self.random.choice(("compensation", "pension", "dependency")),
            status=LIFECYCLE[0],
            status_changed_at=now,
            claimant_participant_id=claimant,
            veteran_participant_id=veteran,
            station_code=self.random.choice(STATIONS),
            amount_claimed=Decimal(self.random.randint(0, 5_000_000)) / 100,
            date_filed=now.date(),
            notes=None,
        )
        session.add(claim)
        session.flush()  # the claim id, for its first lifecycle row in the same transaction
        session.add(ClaimLifecycleStatus(claim_id=claim.claim_id, status=claim.status, changed_at=now,
                                         station_code=claim.station_code))  # fmt: skip

    def _random_claim(self, session: Session, *, open_only: bool = True) -> Claim | None:
        query = select(Claim)
        if open_only:
            query = query.where(Claim.status != "CLOSED")
        return session.scalars(query.order_by(func.random()).limit(1)).first()

    def advance_status(self, session: Session) -> FollowUp | None:
        claim = self._random_claim(session)
        if claim is None:
            return self.new_claim(session)
        position = (
            LIFECYCLE.index(claim.status) if claim.status in LIFECYCLE else LIFECYCLE.index("AUTHORIZED")
        )
        if claim.status == "DECISION_MADE" and self.random.random() < 0.25:
            next_status = ALTERNATIVE_OUTCOME
        else:
            next_status = LIFECYCLE[min(position + 1, len(LIFECYCLE) - 1)]
        now = self._tick()
        claim.status = next_status
        claim.status_changed_at = now
        if next_status == "CLOSED":
            claim.date_closed = now.date()
        claim.updated_at = datetime.now(UTC)
        # Half the status rows name the acting station; the others leave it to the claim's.
        station_code = claim.station_code if self.random.random() < 0.5 else None
        row = ClaimLifecycleStatus(
            claim_id=claim.claim_id, status=next_status, changed_at=now, station_code=station_code
        )
        order = self.random.random()
        if order < 0.6:
            session.add(row)  # in the claim's own transaction
            return None
        claim_id = claim.claim_id
        if order < 0.8:
            return lambda later: later.add(row)  # the status row commits after the claim's update
        station = self.random.choice(STATIONS)

        def moved(later: Session) -> None:
            # The status row with the update, then at once the claim moves to another station
            session_claim = later.get(Claim, claim_id)
            if session_claim is not None:
                session_claim.station_code = station
                session_claim.updated_at = datetime.now(UTC)

        session.add(row)
        return moved

    def touch_only(self, session: Session) -> None:
        """An update no consumer cares about: only the bookkeeping timestamp moves."""
        claim = self._random_claim(session, open_only=False)
        if claim is None:
            return self.new_claim(session)
        claim.updated_at = datetime.now(UTC)
        return None

    def add_contention(self, session: Session) -> None:
        claim = self._random_claim(session)
        if claim is None:
            return self.new_claim(session)
        session.add(
            Contention(
                claim_id=claim.claim_id,
                description=self.random.choice(("ringing in ears", "lower back pain", "PTSD", "asthma")),
                medical=True,
                created_at=self._tick(),
            )
        )
        return None

    def classify_contention(self, session: Session) -> None:
        contention = session.scalars(
            select(Contention)
            .where(Contention.classification_code.is_(None))
            .order_by(func.random())
            .limit(1)
        ).first()
        if contention is None:
            return self.add_contention(session)
        code = self.random.choice(list(CONTENTION_CLASSIFICATIONS))
        contention.classification_code = code
        contention.classification_name = CONTENTION_CLASSIFICATIONS[code]
        contention.updated_at = datetime.now(UTC)
        return None

    def delete_claim(self, session: Session) -> None:
        claim = self._random_claim(session)
        if claim is None or claim.status not in ("RECEIVED", "UNDER_REVIEW"):
            return self.touch_only(session)
        session.execute(delete(Claim).where(Claim.claim_id == claim.claim_id))
        return None

    def step(self) -> str:
        """Apply one randomly drawn action in its own transaction; returns the action's name."""
        action = self.random.choices(list(ACTION_WEIGHTS), weights=list(ACTION_WEIGHTS.values()))[0]
        with Session(self.engine) as session, session.begin():
            follow_up = getattr(self, action)(session)
        self.stats.transactions += 1
        if follow_up is not None:
            with Session(self.engine) as session, session.begin():
                follow_up(session)
            self.stats.transactions += 1
        self.stats.actions[action] += 1
        return action

    def run(self, *, rate: float, duration: float, on_step: object | None = None) -> TrafficStats:
        """Apply actions at `rate` per second for `duration` seconds (paced, not bursty)."""
        interval = 1.0 / rate
        start = time.monotonic()
        next_at = start
        while time.monotonic() - start < duration:
            self.step()
            if callable(on_step):
                on_step(self.stats)
            next_at += interval
            pause = next_at - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        return self.stats


def seed(engine: Engine, *, claims: int = 50, seed_value: int = 1) -> int:
    """Rows that exist before the connector is registered: snapshotted, and never events."""
    traffic = ClaimsTraffic(engine, seed=seed_value, clock=datetime(2025, 11, 1, 9, 0, 0))
    with Session(engine) as session, session.begin():
        for _ in range(claims):
            traffic.new_claim(session)
    with Session(engine) as session, session.begin():
        session.execute(update(Claim).values(date_filed=date(2025, 11, 1)))
    return claims
