"""kvlite's version: a leaf, so no module imports the package to learn it."""

__version__ = "0.1.0"
