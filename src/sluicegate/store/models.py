"""The SQLAlchemy tables of the durable store. Money is integer micro-dollars; ids are short strings."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class LimitsColumns:
    """Limits, a budget and a data-residency restriction, carried by tenants, teams, users and keys alike."""

    rpm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tpm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_concurrency: Mapped[int | None] = mapped_column(Integer, nullable=True)
    budget_micros: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    budget_period: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # region names or prefixes ("eu" admits "eu-west-1"); NULL or empty: no restriction
    allowed_regions: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)


class Tenant(LimitsColumns, Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    guardrail_level: Mapped[str | None] = mapped_column(String(32), nullable=True)  # migration 0008
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class Team(LimitsColumns, Base):
    __tablename__ = "teams"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    guardrail_level: Mapped[str | None] = mapped_column(String(32), nullable=True)  # migration 0008
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class User(LimitsColumns, Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id"), index=True)
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class ApiKey(LimitsColumns, Base):
    """A virtual key. Only hashes are stored; `previous_hash` stays valid until `previous_expires_at`."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hint: Mapped[str] = mapped_column(String(32))  # e.g. "sk-sluice-...x7Qa", enough to recognise, useless to use
    previous_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    previous_expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    role: Mapped[str] = mapped_column(String(16), default="inference")
    # "team": the key's admin role reaches only its team (minted by a team admin); NULL: the role's own reach
    scope: Mapped[str | None] = mapped_column(String(16), nullable=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id"), index=True)
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"), nullable=True, index=True)
    models: Mapped[list[str]] = mapped_column(JSON, default=list)
    max_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    guardrail_level: Mapped[str | None] = mapped_column(String(32), nullable=True)
    key_metadata: Mapped[dict[str, str]] = mapped_column("metadata", JSON, default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class LedgerEntry(Base):
    """One row per request, refused ones included. `request_id` is unique: replay never doubles a row."""

    __tablename__ = "spend_ledger"

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    ts: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    day: Mapped[str] = mapped_column(String(10), index=True)  # UTC "YYYY-MM-DD", grouped on by reports
    tenant_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    team_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    user_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    key_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    feature: Mapped[str | None] = mapped_column(String(200), nullable=True)
    end_user: Mapped[str | None] = mapped_column(String(200), nullable=True)
    endpoint: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(200))
    deployment: Mapped[str | None] = mapped_column(String(200), nullable=True)
    provider: Mapped[str | None] = mapped_column(String(64), nullable=True)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cached_input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    reasoning_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_micros: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # NULL: price unknown
    latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    ttft_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    cache_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    outcome: Mapped[str] = mapped_column(String(32))
    status: Mapped[int] = mapped_column(Integer)
    stream: Mapped[bool] = mapped_column(Boolean, default=False)
    # the tokens (and so the cost) were counted by the gateway: the provider never reported usage
    usage_estimated: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # What optional stages decided (NULL when the stage is off or did not apply); migration 0004.
    requested_model: Mapped[str | None] = mapped_column(String(200), nullable=True)  # as the client asked
    route_tier: Mapped[str | None] = mapped_column(String(32), nullable=True)
    task_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    complexity: Mapped[float | None] = mapped_column(Float, nullable=True)  # 0..1, from the classifier
    guardrail_action: Mapped[str | None] = mapped_column(String(16), nullable=True)  # allow|flag|redact|block
    guardrail_categories: Mapped[str | None] = mapped_column(String(200), nullable=True)  # sorted, comma-joined
    saved_micros: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # provider cost a cache hit avoided
    trace_id: Mapped[str | None] = mapped_column(String(32), nullable=True)  # W3C trace id, 32 hex digits
    # counted in spend_rollups (migration 0007); an in-flight row never is, until its final row replaces it
    rolled_up: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


Index("ix_spend_ledger_tenant_day", LedgerEntry.tenant_id, LedgerEntry.day)
# the rows not yet in the roll-ups: few at any time, found without scanning the ledger
Index(
    "ix_spend_ledger_unrolled",
    LedgerEntry.ts,
    sqlite_where=LedgerEntry.rolled_up == false(),
    postgresql_where=LedgerEntry.rolled_up == false(),
)


class SpendRollup(Base):
    """Spend per hour and per day (UTC) by tenant, team, key, user, feature and model, kept current from the
    ledger (`store/rollups.py`); an absent dimension is ''. Reports over long ranges read these."""

    __tablename__ = "spend_rollups"

    grain: Mapped[str] = mapped_column(String(4), primary_key=True)  # "hour" or "day"
    bucket: Mapped[str] = mapped_column(String(13), primary_key=True)  # "2026-12-02T08" or "2026-12-02"
    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    team_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    feature: Mapped[str] = mapped_column(String(200), primary_key=True)
    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    unpriced_requests: Mapped[int] = mapped_column(BigInteger, default=0)


class AuditRecord(Base):
    """One audit record, a link of its instance's hash chain (migration 0006). Append-only: the gateway
    never updates a row and deletes only whole prefixes of a chain, behind a signed anchor (retention)."""

    __tablename__ = "audit_log"

    instance: Mapped[str] = mapped_column(String(32), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ts_micros: Mapped[int] = mapped_column(BigInteger, index=True)  # integer: hashes the same on every database
    kind: Mapped[str] = mapped_column(String(32), index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(300))
    data: Mapped[str] = mapped_column(Text)  # canonical JSON: before, after, detail (PII masked)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpoint(Base):
    """Per chain: its `head` (last record written) and, once retention has pruned its start, its `anchor`
    (the last pruned record's hash), each signed with the audit key when one is configured."""

    __tablename__ = "audit_checkpoints"

    instance: Mapped[str] = mapped_column(String(32), primary_key=True)
    role: Mapped[str] = mapped_column(String(8), primary_key=True)  # "head" or "anchor"
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    ts_micros: Mapped[int] = mapped_column(BigInteger)
    signature: Mapped[str | None] = mapped_column(String(64), nullable=True)  # NULL: no audit key was set


class StoredResponse(Base):
    """A Responses API answer kept for `previous_response_id` and `GET /v1/responses/{id}` (migration 0009):
    per tenant, until `expires_at`. `items` is the whole conversation up to and including this answer, as
    Responses input items; `input_items` this request's own input."""

    __tablename__ = "stored_responses"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    response: Mapped[str] = mapped_column(Text)  # the response object, JSON
    items: Mapped[str] = mapped_column(Text)  # the conversation, JSON
    input_items: Mapped[str] = mapped_column(Text)  # JSON
