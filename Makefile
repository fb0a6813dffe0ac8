# Convenience targets; the scripts do the work and can be run directly.
.PHONY: bench package test run

## Every benchmark (short measurement times), then regenerate docs/benchmarks.md.
bench:
	./scripts/bench.sh

## Release build and the .deb (target/release/bundle/deb/).
package:
	./scripts/package.sh

test:
	./scripts/test.sh

run:
	./scripts/run.sh
