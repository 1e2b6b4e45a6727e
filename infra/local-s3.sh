#!/usr/bin/env bash
# Start an S3-compatible server on loopback (moto, from the test extra) to try Percolate's
# S3 object store locally, e.g.:
#   infra/local-s3.sh 9000 &
#   export PERCOLATE_STORE=s3://percolate/store PERCOLATE_S3_ENDPOINT_URL=http://127.0.0.1:9000
#   export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1
# then create the bucket once:
#   .venv/bin/python -c "import boto3; boto3.client('s3', endpoint_url='http://127.0.0.1:9000').create_bucket(Bucket='percolate')"
set -euo pipefail
port="${1:-9000}"
here="$(cd "$(dirname "$0")/.." && pwd)"
exec "$here/.venv/bin/python" -m moto.server -H 127.0.0.1 -p "$port"
