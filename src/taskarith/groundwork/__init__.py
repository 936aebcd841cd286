"""The groundwork every layer stands on: errors, safe reads and atomic writes, locks, pinned fetches."""
