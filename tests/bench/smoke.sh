#!/bin/sh
# smoke.sh: the benchmark with tiny sizes and one run (run-bench --smoke),
# as part of `make check`: every answer is validated, nothing is timed
# against a threshold.
exec "${PYTHON3:-python3}" "${POPLAR_SRCDIR:-.}/tests/bench/run-bench" --smoke
