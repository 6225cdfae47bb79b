"""What the gateway observes on live traffic: golden metrics, traces, tail sampling, drift."""
