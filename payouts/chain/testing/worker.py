"""A payout worker in its own process, for the crash and concurrency tests.

    python -m payouts.chain.testing.worker <withdrawal id>... [--die-after sign|broadcast] [--start-at EPOCH]

It reaches the database from DATABASE_URL and the chain through the JSON-RPC bridge (CHAIN_RPC_URL),
like a real worker. `--die-after sign` kills the process with SIGKILL after the transaction was
signed and recorded but before it is broadcast; `--die-after broadcast` right after the broadcast,
before the result is recorded. `--start-at` makes several workers start submitting at one instant; `--slow-sign S` pauses S seconds
inside the nonce allocation (after the wallet row is read, before signing), so that two workers' critical
sections would overlap if the row lock did not serialise them.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from typing import Any


def main(argv: list[str]) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    import django

    django.setup()
    parser = argparse.ArgumentParser()
    parser.add_argument("withdrawal_ids", type=int, nargs="+")
    parser.add_argument("--die-after", choices=["sign", "broadcast"], default="")
    parser.add_argument("--start-at", type=float, default=0.0)
    parser.add_argument("--slow-sign", type=float, default=0.0)
    args = parser.parse_args(argv)

    from payouts.chain import provider as provider_module

    real_broadcast = provider_module.chain_transfer_broadcast

    def killed(**kwargs: Any) -> Any:
        if args.die_after == "broadcast":
            real_broadcast(**kwargs)
        os.kill(os.getpid(), signal.SIGKILL)

    if args.die_after:
        provider_module.chain_transfer_broadcast = killed

    if args.slow_sign:
        from payouts.chain import payouts as payouts_module

        real_signed = payouts_module._signed

        def slow_signed(**kwargs: Any) -> Any:
            time.sleep(args.slow_sign)
            return real_signed(**kwargs)

        payouts_module._signed = slow_signed

    from payouts.services import payout_submit

    if args.start_at:
        time.sleep(max(0.0, args.start_at - time.time()))
    results = []
    for withdrawal_id in args.withdrawal_ids:
        run = payout_submit(withdrawal_id=withdrawal_id)
        results.append({"withdrawal_id": withdrawal_id, "status": run.status, "detail": run.detail})
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
