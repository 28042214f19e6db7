"""The ledger's Prometheus metrics, read at scrape time: rows written, refused, unattributed or lost, and
the spool's pressure (free space, records held in memory, whether new requests are refused)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sluicegate.telemetry.ledger import Ledger


class LedgerCollector(Collector):
    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def collect(self) -> Iterator[Metric]:
        ledger = self._ledger
        rows = CounterMetricFamily(
            "sluicegate_ledger_rows",
            "Ledger rows by fate: written (replays included), unattributed (refused by the database even "
            "normalised, recorded without their texts), set_aside (refused in every form: only in the spool's "
            "rejected file), lost (neither spooled nor written).",
            labels=["fate"],
        )
        rows.add_metric(["written"], ledger.written)
        rows.add_metric(["unattributed"], ledger.unattributed)
        rows.add_metric(["set_aside"], ledger.rejected - ledger.unattributed)
        rows.add_metric(["lost"], ledger.lost)
        yield rows
        yield CounterMetricFamily(
            "sluicegate_ledger_spool_failures",
            "Records the spool could not take (a full disk, an I/O error).",
            value=ledger.spool_failures,
        )
        yield GaugeMetricFamily(
            "sluicegate_ledger_held_records",
            "Records waiting in memory because the spool could not take them.",
            value=ledger.held_records(),
        )
        yield GaugeMetricFamily(
            "sluicegate_ledger_spool_pressure",
            "1 while the spool cannot take records or its disk is under the reserve, else 0.",
            value=1 if ledger.spool_trouble else 0,
        )
        yield GaugeMetricFamily(
            "sluicegate_ledger_accepting",
            "0 while new requests are refused with 503 ledger_unavailable (policy refuse), else 1.",
            value=1 if ledger.accepting else 0,
        )
        if ledger.spool_free_bytes is not None:
            yield GaugeMetricFamily(
                "sluicegate_ledger_spool_free_bytes", "Free space on the spool's disk.", value=ledger.spool_free_bytes
            )
        yield GaugeMetricFamily(
            "sluicegate_ledger_writer_healthy",
            "1 while the database takes the ledger's rows, else 0.",
            value=1 if ledger.healthy else 0,
        )
