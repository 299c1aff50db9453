"""What an instructor runs before a release: ``course run``, ``course selfcheck`` and its mutants."""
