"""Run the PSP stub in the foreground: ``python -m webhooks.stub --port 12111``.

Prints the base URL, then serves until interrupted (Ctrl-C or SIGTERM). With ``--webhook-target`` (the back
office) and ``--payout-delay`` it behaves like a PSP in test mode: docs/ops/local_psp.md.
"""

import argparse
import os
import signal
import threading
from collections.abc import Sequence
from types import FrameType

from .lifecycle import DEFAULT_ADYEN_HMAC_KEY, DEFAULT_STRIPE_WEBHOOK_SECRET
from .server import PSPStub
from .state import (
    DEFAULT_TIMEOUT_DELAY,
    STUB_CONNECTED_ACCOUNT,
    STUB_FAILING_ACCOUNT,
    STUB_FAILING_INSTRUMENT,
    STUB_PENDING_ACCOUNT,
    STUB_PENDING_INSTRUMENT,
)

OFF = ("", "off", "none")


def payout_delay(value: str) -> float | None:
    """Seconds (0 or more), or "off": payouts then stay as created until moved by hand."""
    if value.strip().lower() in OFF:
        return None
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds nor 'off': {value!r}") from None
    if not seconds >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, not {value!r}")
    return seconds


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
    parser.add_argument(
        "--payout-delay",
        type=payout_delay,
        default=os.environ.get("STUB_PAYOUT_DELAY_S", "off"),
        help="seconds after which a created payout is paid (or fails, for the test destinations) and its webhook "
        "sent; 'off' keeps payouts as created (default: $STUB_PAYOUT_DELAY_S, else off; `make run` passes 3)",
    )
    parser.add_argument(
        "--stripe-webhook-secret",
        default=os.environ.get("STRIPE_WEBHOOK_SECRET") or DEFAULT_STRIPE_WEBHOOK_SECRET,
        help="signs the Stripe webhooks the stub sends (default: $STRIPE_WEBHOOK_SECRET, else the development "
        "settings' default)",
    )
    parser.add_argument(
        "--adyen-hmac-key",
        default=os.environ.get("ADYEN_HMAC_KEY") or DEFAULT_ADYEN_HMAC_KEY,
        help="signs the Adyen webhooks the stub sends (default: $ADYEN_HMAC_KEY, else the development settings' "
        "default)",
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
        payout_delay=args.payout_delay,
        stripe_webhook_secret=args.stripe_webhook_secret,
        adyen_hmac_key=args.adyen_hmac_key,
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
            print(f"  pay page:              {stub.url}/_stub/pay/<pi_... or CS...>", flush=True)
        delay = "off" if stub.payout_delay is None else f"{stub.payout_delay:g} s"
        print(f"  payouts paid after:    {delay}", flush=True)
        print(
            f"  test destinations:     fail {STUB_FAILING_ACCOUNT} / {STUB_FAILING_INSTRUMENT}, "
            f"stay pending {STUB_PENDING_ACCOUNT} / {STUB_PENDING_INSTRUMENT}",
            flush=True,
        )
        while not finished.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
