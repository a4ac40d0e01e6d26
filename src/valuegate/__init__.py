"""valuegate: declarative ML experiments gated on business value."""

__version__ = "0.1.0"
