"""File-format readers, checksums and per-batch transforms."""
