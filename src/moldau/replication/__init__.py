"""Partition state (leader epoch, ISR, high watermark) and delayed produce/fetch."""
