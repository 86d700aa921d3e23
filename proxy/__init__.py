"""isogate's I/O shell: HTTP front (aiohttp on uvloop), auth, admin routes, stats and the CLI."""
