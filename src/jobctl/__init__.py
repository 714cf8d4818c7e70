"""jobctl: submit, watch and run background jobs from the terminal."""

__version__ = "0.1.0"
