"""`retain data download NAME` and `retain data check`: fetch datasets from their official
addresses with checksums verified before unpacking, and verify what a data directory holds."""

from __future__ import annotations

import argparse
import os


def add_parser(sub) -> None:
    from retain.data.catalog import default_catalog

    names = sorted(default_catalog())
    data = sub.add_parser("data", help="download datasets and check a data directory")
    verbs = data.add_subparsers(dest="data_command", required=True)
    default_dir = os.environ.get("RETAIN_DATA")
    dl = verbs.add_parser("download", help="download a dataset from its official address (resumable)")
    dl.add_argument("name", choices=names, help="dataset")
    dl.add_argument("--data-dir", default=default_dir, help="data directory (default: $RETAIN_DATA)")
    dl.add_argument("--base-url", help="fetch BASE/FILENAME instead of the official addresses (a mirror; "
                                       "also $RETAIN_DATA_MIRROR)")
    dl.set_defaults(handler=cmd_download)
    ck = verbs.add_parser("check", help="verify the datasets in a data directory against their checksums")
    ck.add_argument("names", nargs="*", help=f"datasets among {', '.join(names)} (default: all)")
    ck.add_argument("--data-dir", default=default_dir, help="data directory (default: $RETAIN_DATA)")
    ck.set_defaults(handler=cmd_check)


def _data_dir(args: argparse.Namespace) -> str:
    from retain.errors import ConfigError

    if not args.data_dir:
        raise ConfigError("no data directory: pass --data-dir or set RETAIN_DATA")
    return args.data_dir


def cmd_download(args: argparse.Namespace) -> int:
    from retain.data.download import download

    folder = download(args.name, _data_dir(args), base_url=args.base_url)
    print(f"{args.name}: ready in {folder}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from retain.data.check import check

    results = check(_data_dir(args), args.names or None)
    for r in results:
        print(f"{r.dataset:<10} {r.status:<10} {r.detail}")
    # corrupt or incomplete data fails; a dataset wholly absent fails only when it was asked for by name
    return 1 if any(r.status in ("corrupt", "incomplete") or (args.names and r.status == "missing")
                    for r in results) else 0
