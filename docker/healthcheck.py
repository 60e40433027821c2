#!/usr/bin/env python3
"""`healthcheck URL`: exit 0 when URL answers HTTP 2xx within five seconds, 1 otherwise.

The images are slim (no curl); this is what their compose healthchecks call.
"""

import sys
import urllib.request


def main() -> int:
    try:
        with urllib.request.urlopen(sys.argv[1], timeout=5) as response:  # noqa: S310  loopback URL from compose
            return 0 if 200 <= response.status < 300 else 1
    except (OSError, ValueError, IndexError) as problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
