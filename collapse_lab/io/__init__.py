"""File I/O helpers: atomic writes, run directories, checkpoints, manifests."""
