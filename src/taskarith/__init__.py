"""taskarith: task arithmetic with non-linear, NTK-linearized and attention-only task vectors."""

__version__ = "0.1.0"
