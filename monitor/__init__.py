"""qualimon: a mystery-user monitor for the reception quality of public services."""

__version__ = "0.1.0"
