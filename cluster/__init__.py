"""The runtime, in two layers: ``cluster.stores`` (the engines, below the shard) and ``cluster.ops`` (the
operator layer, above the service)."""
