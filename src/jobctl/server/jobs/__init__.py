"""Built-in job types: `journal_extraction` and `demo`."""
