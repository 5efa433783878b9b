# The two commands a newcomer needs. Each sets up what it needs first (scripts/bootstrap.sh is idempotent).
.PHONY: run test bench setup

setup:
	./scripts/bootstrap.sh

run: setup
	.venv/bin/warmline run

# Static checks first (seconds): the one-way layers, lint and format, types; then the whole suite.
test:
	./scripts/bootstrap.sh --test
	.venv/bin/lint-imports
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	.venv/bin/python -m pytest -q -ra

bench: setup
	.venv/bin/python bench/bot_turn.py --json bench/out/bot_turn.json
