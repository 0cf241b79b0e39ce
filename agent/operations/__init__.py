"""Long-running operations: the journal, the manager and their model."""
