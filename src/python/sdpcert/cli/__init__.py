"""Command line: ``sdpcert certify MODEL.npz --eps 0.1``, ``sdpcert attack MODEL.npz --eps 0.1``, ``sdpcert demo``,
``sdpcert train --objective sdp``, ``sdpcert export-vnnlib MODEL --eps 0.1 --out DIR``, ``sdpcert verify
MODEL.onnx PROP.vnnlib`` and ``sdpcert reproduce --out DIR``.

Models: a ``.npz`` written by ``TwoLayerNet.save``, an ``.onnx`` graph (``TwoLayerNet.from_onnx``; the ``onnx``
extra) or a packaged model's name. Data (``--data``): any folder of MNIST-format IDX files or an ``.npz`` with ``X``
and ``y`` (:func:`sdpcert.data.load_dataset`), else ``$SDPCERT_MNIST_DIR`` (MNIST), else the packaged sample; the
reports name the data set, its size and sha256, and a model whose d or k is not the data's is refused.

- ``certify``: clean and certified error (SDP, spectral, Frobenius, LP bounds; on request interval bounds and
  ``best``, the per-example cascade) of a saved model; ``--input-domain 0,1`` certifies the ball intersected with
  the pixel box (per-example methods).
- ``attack``: clean error and the error under FGSM / PGD / CW-l_inf attacks (lower bounds on the robust error);
  with ``--check-certificates`` also certifies the same points and checks that no attack broke a certified point.
- ``demo``: train, certify and attack a small net on the packaged MNIST sample.
- ``train``: train with one of the paper's objectives, on any data set (d and k follow the data).
- ``export-vnnlib``: each example's l_inf robustness property as a VNNLIB file (VNN-COMP's form), optionally with the
  model as ONNX.
- ``verify``: answer one VNNLIB property (:mod:`sdpcert.vnnlib`): ``unsat`` (certified on the box), ``sat`` (a
  counterexample, re-checked in float64) or ``unknown`` on stdout, exit code 0 for each.
- ``reproduce``: the paper's experiments end to end (its 7 networks and CROWN-box-NN, ours; every bound and attack,
  figures, report).

Exit codes: 0 success (``verify``: whatever the answer); 2 bad input (a usage error, an ``SdpcertError`` such as a
corrupt model or data file, an ONNX graph or VNNLIB file outside what sdpcert reads, a model whose d or k is not the
data's, a negative eps, a missing or unwritable file), reported as one ``error: ...`` line on stderr without a
traceback, and nothing written; 3 a soundness check failed (``demo``, ``attack --check-certificates``,
``reproduce``: a certified point was broken by an attack, an ``UnsoundCertificateError``), also reported as an
``error: ...`` line.

JSON reports (``--json``) are strict JSON: a number that is not finite (e.g. the upper bound of a pair SDP that
could not be proven, +inf) is written as ``null`` and its location is listed under ``"non_finite"``.

Progress bars and notes go to stderr, tables to stdout. ``parser.py`` defines the arguments, ``inputs.py`` reads
and checks the model and data, ``commands.py`` holds one function per command, ``output.py`` the tables, bars and
JSON; the numerical work lives in :mod:`sdpcert.certify`, :mod:`sdpcert.attacks`, :mod:`sdpcert.training`,
:mod:`sdpcert.vnnlib` and :mod:`sdpcert.experiments`.
"""

from __future__ import annotations

import sys
from typing import Optional, Sequence

from ..errors import SdpcertError, UnsoundCertificateError
from .commands import COMMANDS, EXIT_INPUT, EXIT_OK, EXIT_UNSOUND
from .parser import build_parser

__all__ = ["main", "build_parser", "EXIT_OK", "EXIT_INPUT", "EXIT_UNSOUND"]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the ``sdpcert`` command line; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # usage errors (code 2), --help / --version (code 0)
        return int(exc.code) if isinstance(exc.code, int) else EXIT_INPUT
    handler = COMMANDS[args.command]
    try:
        return handler(args)
    except UnsoundCertificateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNSOUND
    except SdpcertError as exc:  # bad input, including arguments the compiled core refused (CoreArgumentError)
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except OSError as exc:  # missing / unreadable / unwritable files named on the command line
        name = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        print(f"error: {exc.strerror or exc}{':' + name if name else ''}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
