"""`make stress`: a bounded load test on 127.0.0.1 (see stress/run.py)."""
