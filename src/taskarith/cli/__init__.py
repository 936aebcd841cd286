"""The `taskarith` command: one module per command group; `app` holds the root, `terminal` what every command
prints and what it does before it computes. Only the commands that compute import torch, inside their bodies."""

from .app import main

__all__ = ["main"]
