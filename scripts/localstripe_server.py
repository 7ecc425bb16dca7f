"""Run localstripe (a fake Stripe API, test and demo only) on 127.0.0.1.

localstripe binds every interface and pickles its whole state to /tmp on each write. Here it
binds loopback only, and keeps state in memory (tests) or in the file given with --state
(the demo, so that a restart keeps the objects our database points at).

It also serves disputes and files, which localstripe lacks (scripts/localstripe_ext.py
documents them: endpoints, Stripe's dispute test cards, events, the /_config helpers), and
Stripe Connect: connected accounts, transfers and their reversals
(scripts/localstripe_connect.py, with its fault switch for the transfer tests), and Stripe's
coupons and promotion codes (scripts/localstripe_promotion_codes.py).
--dispute-outcome-delay sets how many seconds after a submission with Stripe's test
evidence (`winning_evidence` / `losing_evidence`) the dispute closes.
"""

import argparse
import logging
import pickle
import socket
from pathlib import Path

from aiohttp import web
from localstripe import resources, server
from localstripe_ext import install as install_disputes_and_files


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8420)
    parser.add_argument("--state", help="pickle file to persist state in (default: memory)")
    parser.add_argument("--dispute-outcome-delay", type=float, default=0.5)
    args = parser.parse_args()

    state = Path(args.state) if args.state else None

    def load(store):
        if state and state.exists():
            store.clear()
            store.update(pickle.loads(state.read_bytes()))

    def dump(store):
        if state:
            tmp = state.with_suffix(".tmp")
            tmp.write_bytes(pickle.dumps(dict(store), protocol=pickle.HIGHEST_PROTOCOL))
            tmp.replace(state)

    resources.Store.try_load_from_disk = load
    resources.Store.dump_to_disk = dump
    install_disputes_and_files(dispute_outcome_delay=args.dispute_outcome_delay)
    resources.store.try_load_from_disk()

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    logging.basicConfig(level=logging.WARNING)
    web.run_app(server.app, sock=sock, access_log=None, print=None)


if __name__ == "__main__":
    main()
