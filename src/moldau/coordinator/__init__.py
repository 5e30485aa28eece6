"""Coordinators: producer ids today; consumer groups and transactions to come."""
