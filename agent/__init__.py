"""hostagent: the per-node agent of a sovereign cloud."""
__version__ = "0.1.0"
