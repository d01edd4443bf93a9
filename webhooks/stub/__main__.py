"""Run the PSP stub in the foreground: ``python -m webhooks.stub --port 12111``.

Prints the base URL, then serves until interrupted (Ctrl-C or SIGTERM).
"""

import argparse
import signal
import threading
from collections.abc import Sequence
from types import FrameType

from .server import PSPStub
from .state import DEFAULT_TIMEOUT_DELAY, STUB_CONNECTED_ACCOUNT


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m webhooks.stub", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=12111, help="port to bind; 0 picks a free one (default: 12111)")
    parser.add_argument(
        "--timeout-delay",
        type=float,
        default=DEFAULT_TIMEOUT_DELAY,
        help=f"longest the timeout mode holds a response if the client does not hang up (default: {DEFAULT_TIMEOUT_DELAY})",
    )
    parser.add_argument(
        "--webhook-target",
        help="base URL of the app; /_stub/webhooks/* calls that give a 'path' instead of a 'target_url' POST there",
    )
    parser.add_argument(
        "--connected-account",
        action="append",
        default=[],
        help="a Stripe Connect account (acct_...) the stub knows, besides its own demo account; repeatable",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    stub = PSPStub(
        args.host,
        args.port,
        timeout_delay=args.timeout_delay,
        webhook_target=args.webhook_target,
        verbose=args.verbose,
    )
    for account in args.connected_account:
        stub.add_connected_account(account)
    finished = threading.Event()

    def finish(signum: int, frame: FrameType | None) -> None:
        finished.set()

    signal.signal(signal.SIGINT, finish)
    signal.signal(signal.SIGTERM, finish)
    with stub:
        print(f"PSP stub listening on {stub.url}", flush=True)
        print(f"  Stripe api base:       {stub.url}", flush=True)
        print(f"  Adyen checkout base:   {stub.adyen_checkout_url}", flush=True)
        print(f"  Adyen transfers base:  {stub.adyen_transfers_url}", flush=True)
        print(f"  Stripe connected account (demo): {STUB_CONNECTED_ACCOUNT}", flush=True)
        if stub.webhook_target:
            print(f"  webhooks go to:        {stub.webhook_target}", flush=True)
        while not finished.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
