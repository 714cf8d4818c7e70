"""The dashboard (`jobctl tui`): Textual only from here down."""
