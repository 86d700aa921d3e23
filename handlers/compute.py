"""Compute: CPU-bound work sized by `?n=`: counts the primes below n by trial division (n <= 2,000,000)."""

from handlers import Request, Response

MAX_N = 2_000_000


def count_primes(n: int) -> tuple[int, int]:
    """(how many primes are below n, the largest of them)."""
    count, largest = 0, 0
    for candidate in range(2, n):
        if candidate > 3 and (candidate % 2 == 0 or candidate % 3 == 0):
            continue
        divisor, prime = 5, True
        while divisor * divisor <= candidate:
            if candidate % divisor == 0 or candidate % (divisor + 2) == 0:
                prime = False
                break
            divisor += 6
        if prime:
            count, largest = count + 1, candidate
    return count, largest


def handle(request: Request) -> Response:
    raw = request.arg("n", "10000") or ""
    if not raw.isdigit() or int(raw) > MAX_N:
        return Response.json({"error": "invalid_n", "detail": f"n must be an integer within 0..{MAX_N}"}, 400)
    count, largest = count_primes(int(raw))
    return Response.json({"n": int(raw), "primes": count, "largest": largest})
