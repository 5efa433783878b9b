"""Warmline: operator-facing glue (settings, database, command line) shared by the relay, the actions and the KB."""
