"""``python -m sdpcert.experiments fig3b --data DIR --out DIR``: Fig. 3b (error vs eps of one network: FGSM, PGD,
CW and the certificates) as CSV and PNG, on the packaged SDP-NN by default.

``python -m sdpcert.experiments certificates --model M --data DIR --out DIR``: the same measurement with every
certification method that applies to the net (the per-example ones over the input box, default [0, 1]) and each
method's time, as certificates.csv and certificates.png.

Exit code 3 when an attack broke a certified point (a certificate is unsound), else 0.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional, Sequence

from ..certify import Certifier, methods_for
from ..data import load_mnist
from ..model import load_model
from .error_vs_eps import error_vs_eps, plot_error_vs_eps, write_csv

__all__ = ["main"]


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sdpcert.experiments", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    fig = sub.add_parser("fig3b", help="error vs eps of one network: FGSM, PGD, CW and the certificates")
    fig.add_argument("--model", default="sdp-nn", help="model file or packaged name (default sdp-nn)")
    fig.add_argument("--data", required=True, help="folder with the MNIST IDX files")
    fig.add_argument("--limit", type=int, default=None, help="first N test images")
    fig.add_argument("--eps", default="0.01,0.025,0.05,0.075,0.1,0.125,0.15")
    fig.add_argument("--restarts", type=int, default=1, help="PGD restarts")
    fig.add_argument("--out", required=True, help="folder for fig3b.csv and fig3b.png")
    cert = sub.add_parser("certificates", help="error vs eps of one network: attacks and every certificate, timed")
    cert.add_argument("--model", default="sdp-nn", help="model file or packaged name (default sdp-nn)")
    cert.add_argument("--data", required=True, help="folder with the MNIST IDX files")
    cert.add_argument("--limit", type=int, default=None, help="first N test images")
    cert.add_argument("--eps", default="0.025,0.05,0.075,0.1,0.125,0.15")
    cert.add_argument("--methods", default=None, help="comma-separated methods (default: every one that applies)")
    cert.add_argument("--input-domain", default="0,1", help="LO,HI of the inputs, or none (default 0,1)")
    cert.add_argument("--restarts", type=int, default=1, help="PGD restarts")
    cert.add_argument("--out", required=True, help="folder for certificates.csv and certificates.png")
    args = parser.parse_args(argv)
    if args.what == "certificates":
        return _certificates(args)
    net = load_model(args.model)
    X, y = load_mnist("test", folder=args.data, limit=args.limit)
    rows = error_vs_eps(net, X, y, [float(e) for e in args.eps.split(",")],
                        attack_options={"pgd": {"restarts": args.restarts}},
                        progress=lambda done, total: print(f"eps {done}/{total}", flush=True))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out / "fig3b.csv")
    plot_error_vs_eps(rows, out / "fig3b.png", title=f"{args.model}: attacks vs certificates, MNIST test (n = {len(y)})",
                      methods=[m for m in ("sdp", "lp") if f"{m}_certified_error" in rows[0]])
    for row in rows:
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()})
    return 0 if all(row["broken"] == 0 for row in rows) else 3


def _certificates(args: argparse.Namespace) -> int:
    net = load_model(args.model)
    X, y = load_mnist("test", folder=args.data, limit=args.limit)
    domain = None if args.input_domain.strip().lower() == "none" else tuple(
        float(v) for v in args.input_domain.split(","))
    methods = (list(methods_for(net, every=True)) if args.methods is None
               else [m.strip() for m in args.methods.split(",") if m.strip()])
    certifier = Certifier(net, input_domain=domain)
    rows = error_vs_eps(net, X, y, [float(e) for e in args.eps.split(",")], methods=methods, certifier=certifier,
                        attacks=("fgsm", "pgd"), attack_options={"pgd": {"restarts": args.restarts}},
                        progress=lambda done, total: print(f"eps {done}/{total}", flush=True))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out / "certificates.csv")
    where = "the whole ball" if domain is None else f"ball ∩ [{domain[0]:g}, {domain[1]:g}]^d"
    plot_error_vs_eps(rows, out / "certificates.png", attacks=("pgd",), methods=methods,
                      title=f"{args.model}: PGD vs certificates over {where}, MNIST test (n = {len(y)})")
    for row in rows:
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()})
    return 0 if all(row["broken"] == 0 for row in rows) else 3


if __name__ == "__main__":
    raise SystemExit(main())
