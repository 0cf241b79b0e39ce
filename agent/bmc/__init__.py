"""The BMC layer: targets, isolation (guard), SEL cursor, energy meter,
operations.  The IPMI transport itself is ``agent.backends.ipmi``; see
docs/bmc.md."""
