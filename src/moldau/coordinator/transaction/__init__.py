"""Transactions: the transaction coordinator and ``__transaction_state``'s records."""

from moldau.coordinator.transaction.coordinator import (
    TXN_TOPIC,
    TransactionCoordinator,
    TxnMetadata,
)
from moldau.coordinator.transaction.records import TxnState

__all__ = ["TXN_TOPIC", "TransactionCoordinator", "TxnMetadata", "TxnState"]
