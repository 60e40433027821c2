# Shared by the local_test scripts: where things are, and the `IMAGE [--native]` arguments.
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
TEST_DIR="${TEST_DIR:-$HERE/test_dir}"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
PORT="${PORT:-8080}"

# A Docker image reference: [registry[:port]/]name[/name...][:tag][@sha256:digest], lowercase names.
IMAGE_PATTERN='^([a-z0-9.-]+(:[0-9]+)?/)?[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$'

fail() {
  echo "$(basename "$0"): $*" >&2
  exit 2
}

# Sets MODE (docker or native) and IMAGE from the arguments; refuses anything else before any work.
parse_image_arguments() {
  MODE=docker
  IMAGE=""
  for argument in "$@"; do
    case "$argument" in
      --native) MODE=native ;;
      -h | --help)
        echo "usage: $(basename "$0") IMAGE [--native]   (--native: run the program without Docker; IMAGE optional)"
        exit 0
        ;;
      -*) fail "unknown option $argument (usage: $(basename "$0") IMAGE [--native])" ;;
      *)
        [ -z "$IMAGE" ] || fail "one image name only, got '$IMAGE' and '$argument'"
        [[ "$argument" =~ $IMAGE_PATTERN ]] || fail "'$argument' is not a Docker image name (e.g. random_forest)"
        IMAGE="$argument"
        ;;
    esac
  done
  if [ "$MODE" = docker ]; then
    [ -n "$IMAGE" ] || fail "name the image, as ./build_and_push.sh built it: $(basename "$0") random_forest (or add --native)"
    command -v docker >/dev/null || fail "docker is not on PATH; add --native to run without it"
  fi
}
