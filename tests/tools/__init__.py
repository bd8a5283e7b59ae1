"""Development tools that read the code (run with ``python -m tests.tools.<name>``)."""
