"""KIP-932 share groups: membership (group.py), share-partition state (partition.py),
the share-partition leader (manager.py) and durable state (state.py)."""
