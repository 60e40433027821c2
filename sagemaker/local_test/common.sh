# Shared by the local_test scripts: the mode flag, the image, the Python of the checkout.
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
TEST_DIR="$HERE/test_dir"
IMAGE="${IMAGE:-ancora-sagemaker:latest}"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
MODE=docker
if [ "${1:-}" = "--native" ]; then
  MODE=native
  shift
fi
