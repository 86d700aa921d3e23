"""isogate's pure core: config model, identity, risk scoring and decisions (stdlib only, no I/O)."""
