"""The network feature's domain: the desired-state model, nmstate's format,
validation, the ordered plan and the transactional engine (snapshot, journal,
rollback).  It knows nothing of gRPC; every kernel change goes through
:class:`agent.backends.netconf.NetconfBackend`.  Design: docs/network-internals.md."""
