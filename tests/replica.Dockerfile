# The example replica app (scripts/example-image.sh) with two CGI endpoints for fault tests: slow and big.
FROM isogate-example-app:latest
COPY tests/replica_cgi/ /www/cgi-bin/
