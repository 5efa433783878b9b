"""Operator glue, the top floor: the `warmline` command line, process supervision, migrations and training. It may
import every package below it; nothing imports it."""
