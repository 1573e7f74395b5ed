"""The collector split into shards: the parent process that starts, supervises and
serves the probes of one worker process per shard (:mod:`marketd.shards.parent`), and the
merge of their metrics (:mod:`marketd.shards.exposition`). Which streams each shard
collects is configuration: :mod:`marketd.config.shards`."""
