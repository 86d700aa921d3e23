"""Execute step: handlers run behind one Executor protocol, in threads or (later) containers."""
