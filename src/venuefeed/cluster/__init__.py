"""Scale-out on NATS JetStream: workers own shards by lease, writers consume the stream.

See ``docs/cluster.md``. Coordination is JetStream's (key-value buckets with a
TTL and compare-and-set by revision, streams with message-id dedup); nothing
here is a coordination service of its own.
"""
