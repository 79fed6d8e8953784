"""The sample source: a claims database modelled on Veteran benefit claims.

A claim moves through a lifecycle (`status`, with the time of the last change); it has an
end-product (claim type) code, the claimant's and the Veteran's participant ids, a benefit type, the
station acting on it, amounts as NUMERIC and dates. Contentions (the conditions claimed) belong to a
claim and get a classification during development of the claim. Every status a claim reaches is
also a row of `claim_lifecycle_status` (claim id, status, when, acting station), as in real claim
systems: the decision letter event fires on those rows and looks the claim up.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# The lifecycle a claim moves through, in order. AUTHORIZED and CONTINUED_AT_AUTHORIZATION are the
# two outcomes after which a decision letter becomes available.
LIFECYCLE: tuple[str, ...] = (
    "RECEIVED",
    "UNDER_REVIEW",
    "GATHERING_EVIDENCE",
    "DECISION_MADE",
    "AUTHORIZED",
    "CLOSED",
)
ALTERNATIVE_OUTCOME = "CONTINUED_AT_AUTHORIZATION"

# End-product codes: the 0x0 family are original and supplemental compensation claims; 400 is a
# dependency claim; 930 a correction. Only some of them produce decision letters in the sample.
END_PRODUCT_CODES: tuple[str, ...] = ("010", "020", "110", "120", "130", "400", "930")
DECISION_LETTER_CODES: tuple[str, ...] = ("010", "020", "110")

CONTENTION_CLASSIFICATIONS: dict[int, str] = {
    8920: "Hearing Loss",
    8935: "Tinnitus",
    8968: "Mental Disorders",
    8997: "Musculoskeletal - Back",
    9007: "Respiratory",
    9012: "Cardiovascular",
}

STATIONS: tuple[str, ...] = ("301", "310", "317", "329", "343", "397")


class Base(DeclarativeBase):
    metadata = MetaData(schema="public")


class Claim(Base):
    __tablename__ = "claims"

    claim_id: Mapped[int] = mapped_column(BigInteger, Identity(start=1000), primary_key=True)
    claim_type_code: Mapped[str] = mapped_column(String(3))
    benefit_type: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(32))
    status_changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=False))
    claimant_participant_id: Mapped[int] = mapped_column(BigInteger)
    veteran_participant_id: Mapped[int] = mapped_column(BigInteger)
    station_code: Mapped[str] = mapped_column(String(3))
    amount_claimed: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    date_filed: Mapped[date] = mapped_column(Date)
    date_closed: Mapped[date | None] = mapped_column(Date)
    notes: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Contention(Base):
    __tablename__ = "contentions"

    contention_id: Mapped[int] = mapped_column(BigInteger, Identity(start=1), primary_key=True)
    claim_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("claims.claim_id", ondelete="CASCADE"))
    description: Mapped[str] = mapped_column(Text)
    classification_code: Mapped[int | None] = mapped_column(Integer)
    classification_name: Mapped[str | None] = mapped_column(String(60))
    medical: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=False))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ClaimLifecycleStatus(Base):
    """One row per lifecycle status a claim reached (written by the claims workflow, beside `claims`)."""

    __tablename__ = "claim_lifecycle_status"

    lifecycle_id: Mapped[int] = mapped_column(BigInteger, Identity(start=1), primary_key=True)
    claim_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("claims.claim_id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(32))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=False))
    station_code: Mapped[str | None] = mapped_column(String(3))


TABLES = ("public.claims", "public.contentions", "public.claim_lifecycle_status")
