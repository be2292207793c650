"""Data layer: dataset specs, preparation, built-in datasets and batch iteration."""
