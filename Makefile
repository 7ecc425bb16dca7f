.PHONY: demo test bench lint
demo:   ## set up and serve the back-office with demo data
	bash scripts/demo.sh
test:   ## set up and run the whole test suite (SQLite, then PostgreSQL)
	bash scripts/test.sh
bench:  ## benchmarks on a throwaway PostgreSQL (prints figures)
	bash scripts/bench.sh
lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .
