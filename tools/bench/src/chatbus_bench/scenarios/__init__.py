"""One module per scenario; each `run(ctx)` returns its part of the results file."""
