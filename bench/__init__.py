"""`make bench`: cold start, warm latency, round trips and size of every function, against floors."""
