"""The broker process: wiring of configuration, metadata, storage, partitions and server."""
