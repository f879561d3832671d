# Convenience wrappers; the README's two commands are the scripts themselves.
.PHONY: demo test lint
demo:
	bash scripts/demo.sh
test:
	bash scripts/test.sh
lint:
	.venv/bin/ruff check . && .venv/bin/mypy && .venv/bin/lint-imports
