"""`jitaccess-operator`: run the operator (settings from `JITACCESS_*` environment variables)."""

from __future__ import annotations

import argparse
import logging
import sys

import kopf

from jitaccess.logs import configure_logging
from jitaccess.settings import Settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="jitaccess-operator", description=__doc__)
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    parser.add_argument("--liveness", default=None, help="liveness endpoint, e.g. http://0.0.0.0:8080/healthz")
    args = parser.parse_args(argv)
    settings = Settings()
    configure_logging(settings.log_format, logging.DEBUG if args.verbose else logging.INFO)

    import jitaccess.handlers  # noqa: F401  (registers the handlers)

    kopf.run(
        clusterwide=True,
        standalone=settings.standalone,
        liveness_endpoint=args.liveness,
        memo=kopf.Memo(settings=settings),
    )


if __name__ == "__main__":
    main(sys.argv[1:])
