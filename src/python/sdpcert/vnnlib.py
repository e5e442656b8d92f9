"""l_inf robustness properties in VNN-COMP's VNNLIB form, out and in, and the answer sdpcert gives for one.

:func:`write_vnnlib` writes the property "the network keeps label y on the box [x - eps, x + eps] (intersected with
an input domain)" the way VNN-COMP's robustness benchmarks state it -- as its negation, which a verifier tries to
satisfy::

    (declare-const X_0 Real) ...               one input per coordinate, one output Y_j per class
    (assert (<= X_0 0.35)) (assert (>= X_0 0.15)) ...          the input box, one upper and one lower bound each
    (assert (or (and (>= Y_0 Y_3)) (and (>= Y_1 Y_3)) ...))    some other class scores at least as high as y

so ``unsat`` (no input in the box satisfies it) means robust, and a satisfying input is a counterexample. The box
ends are the certifier's own (:func:`sdpcert.certify.input_bounds`): fl(x - eps) and fl(x + eps) rounded outward,
so the box in the file contains the ball's part of the domain, and the numbers are written as decimals that read
back as exactly the same float64 (the shortest digits that do, never an exponent).

:func:`read_vnnlib` reads exactly that subset back: declarations of ``X_i``/``Y_j`` as ``Real``, one ``<=`` and one
``>=`` bound with a number per input, and one output assertion of the one-vs-all form above; comments (``;``) are
ignored. Anything else -- another operator or term, a missing or repeated bound, an empty box, an incomplete
disjunction, undeclared names -- is a :class:`VnnlibError` naming the line. It returns a :class:`RobustnessProperty`
(the box ``lo``/``hi``, the label ``y``, ``k``).

:func:`verify_property` answers a property for a network as a VNN-COMP tool does: ``unsat`` when a certification
method proves the box robust, ``sat`` when PGD finds an input in the box whose margin ``max_{j != y} f_j - f_y`` is
>= 0 *in float64 numpy* (re-checked there, and inside the box), else ``unknown``. :func:`write_counterexample`
writes a counterexample as VNN-COMP's ``((X_0 v) ... (Y_0 v) ...)``.

The proof is about the box in the file, exactly: the certifier gets ``input_domain = (lo, hi)`` and a ball around
the box's midpoint c whose radius eps covers the box (each |c_i - end| rounded up by a float step), so the ball
intersected with the domain is the box itself for the per-example methods (interval, lp, best's stages), and the
whole-ball methods (sdp, spectral, frobenius) prove a ball that contains it. A coordinate with lo = hi gets hi one
float higher (the certifier's domain needs lo < hi): a slightly larger box, so the proof still covers the file's.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np

from ._checks import check_data, check_eps, check_in_domain, check_input_domain, positive_int
from .errors import DataIntegrityError, SdpcertError, ShapeError

__all__ = ["write_vnnlib", "read_vnnlib", "RobustnessProperty", "VnnlibError", "verify_property", "VerifyResult",
           "write_counterexample", "format_number", "ANSWERS"]

#: What :func:`verify_property` (and ``sdpcert verify``) can answer.
ANSWERS = ("unsat", "sat", "unknown")


class VnnlibError(DataIntegrityError):
    """A VNNLIB file outside the subset :func:`read_vnnlib` reads (or not readable at all); the message names the
    line."""


@dataclass(frozen=True)
class RobustnessProperty:
    """The l_inf robustness property of one example: every input in the box ``lo <= x <= hi`` ((d,) float64) must
    keep label ``y`` among ``k`` classes. ``source``: the file it was read from."""

    lo: np.ndarray
    hi: np.ndarray
    y: int
    k: int
    source: str = ""

    @property
    def d(self) -> int:
        return int(self.lo.shape[0])

    @property
    def center(self) -> np.ndarray:
        """The box's midpoint (inside the box), as the certifier gets it."""
        return np.clip(0.5 * self.lo + 0.5 * self.hi, self.lo, self.hi)


# ----------------------------------------------------------------------------------------------- writing
def format_number(value: float) -> str:
    """A float64 as a decimal that reads back (``float``) as exactly the same value: the shortest such digits, in
    positional notation (SMT-LIB decimals have no exponent), with a leading ``-`` for negatives as VNN-COMP's
    benchmarks write them."""
    value = float(value)
    if not np.isfinite(value):
        raise SdpcertError(f"cannot write the non-finite number {value} in a VNNLIB file")
    return np.format_float_positional(np.float64(value), unique=True, trim="0")


def write_vnnlib(path: str | os.PathLike, x: Any, y: Any, eps: Any, k: Any, input_domain: Any = None, *,
                 comment: str = "") -> Path:
    """Write the l_inf robustness property of example ``x`` ((d,) finite floats) with label ``y`` among ``k``
    classes at radius ``eps`` to ``path`` (module docstring); ``input_domain``: None, or (lo, hi) scalars or (d,)
    arrays the box is clipped to (``x`` must lie inside); ``comment``: more header lines (e.g. where the example
    comes from), written as ``;`` comments. Returns the path. The file is written whole or not at all (a temporary
    file renamed into place)."""
    from .certify import input_bounds

    k = positive_int("k", k)
    if k < 2:
        raise SdpcertError(f"k must be >= 2 classes; got {k}")
    x_arr = np.asarray(x) if not hasattr(x, "detach") else x.detach().cpu().numpy()
    if x_arr.ndim != 1:
        raise ShapeError(f"x must be one example, shape (d,); got shape {x_arr.shape}")
    X, labels = check_data(x_arr[None, :], np.asarray([y]) if np.ndim(y) == 0 else y, None, k, min_rows=1)
    if len(labels) != 1:
        raise ShapeError(f"y must be one label; got {len(labels)}")
    eps = check_eps(eps)
    domain = check_input_domain(input_domain, X.shape[1])
    check_in_domain(X, domain)
    lo, hi = (end[0] for end in input_bounds(X, eps, domain))
    if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
        raise SdpcertError("the box [x - eps, x + eps] overflows float64; no finite VNNLIB box holds it")
    label, d = int(labels[0]), X.shape[1]
    where = "" if domain is None else " intersected with the input domain"
    lines = [f"; l_inf robustness of one example written by sdpcert: label {label} of {k} classes, eps {eps!r}",
             f"; the box [x - eps, x + eps]{where}, its ends rounded outward to float64",
             f"; unsat means robust: no input in the box gives another class a score >= class {label}'s"]
    lines += [f"; {line}" for line in str(comment).splitlines()] + [""]
    lines += [f"(declare-const X_{i} Real)" for i in range(d)]
    lines += [""] + [f"(declare-const Y_{j} Real)" for j in range(k)]
    lines += ["", "; the input box"]
    for i in range(d):
        lines.append(f"(assert (<= X_{i} {format_number(hi[i])}))")
        lines.append(f"(assert (>= X_{i} {format_number(lo[i])}))")
    lines += ["", f"; the negation of robustness: some class j != {label} has Y_j >= Y_{label}", "(assert (or"]
    lines += [f"    (and (>= Y_{j} Y_{label}))" for j in range(k) if j != label]
    lines += ["))", ""]
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines))
    os.replace(tmp, path)
    return path


# ----------------------------------------------------------------------------------------------- reading
_NUMBER = re.compile(r"^-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$")
_VARIABLE = re.compile(r"^([XY])_(0|[1-9]\d*)$")


@dataclass
class _Node:
    """One s-expression of the file: an atom (``text``) or a list (``items``), and the line it starts on."""

    line: int
    text: Optional[str] = None
    items: list = field(default_factory=list)

    @property
    def is_atom(self) -> bool:
        return self.text is not None

    def show(self, limit: int = 60) -> str:
        out = self.text if self.is_atom else "(" + " ".join(item.show(limit) for item in self.items) + ")"
        return out if len(out) <= limit else out[:limit - 3] + "..."


def _tokens(text: str) -> Iterator[tuple[int, str]]:
    """(line number, token) of every parenthesis and atom outside comments."""
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split(";", 1)[0]
        for token in re.findall(r"\(|\)|[^\s()]+", line):
            yield number, token


def _parse(text: str, source: str) -> list[_Node]:
    """The top-level s-expressions of ``text``; unbalanced parentheses and atoms outside a list are errors."""
    forms: list[_Node] = []
    stack: list[_Node] = []
    for line, token in _tokens(text):
        if token == "(":
            stack.append(_Node(line))
        elif token == ")":
            if not stack:
                raise VnnlibError(f"{source}: line {line}: ')' closes nothing")
            node = stack.pop()
            (stack[-1].items if stack else forms).append(node)
        elif stack:
            stack[-1].items.append(_Node(line, text=token))
        else:
            raise VnnlibError(f"{source}: line {line}: {token!r} outside any (...) form")
    if stack:
        raise VnnlibError(f"{source}: line {stack[-1].line}: this '(' is never closed (the file ends first)")
    return forms


class _Reader:
    """Checks each top-level form against the subset and collects the box and the output property."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.declared: dict[tuple[str, int], int] = {}  # (kind, index) -> line
        self.lower: dict[int, tuple[float, int]] = {}  # input index -> (bound, line)
        self.upper: dict[int, tuple[float, int]] = {}
        self.output: Optional[tuple[int, list[int], int]] = None  # (label, other classes in order, line)

    def error(self, node: _Node, message: str) -> VnnlibError:
        return VnnlibError(f"{self.source}: line {node.line}: {message}")

    def outside(self, node: _Node, expected: str) -> VnnlibError:
        return self.error(node, f"{node.show()} is outside the VNNLIB subset sdpcert reads (expected {expected})")

    def variable(self, node: _Node, kind: str) -> int:
        match = _VARIABLE.match(node.text or "")
        if not match or match.group(1) != kind:
            raise self.outside(node, f"a {'input X_i' if kind == 'X' else 'output Y_j'}")
        index = int(match.group(2))
        if (kind, index) not in self.declared:
            raise self.error(node, f"{node.text} is used before it is declared")
        return index

    def number(self, node: _Node) -> float:
        if not node.is_atom or not _NUMBER.match(node.text):
            raise self.outside(node, "a decimal number")
        value = float(node.text)
        if not np.isfinite(value):
            raise self.error(node, f"{node.text} is not a finite float64")
        return value

    def form(self, node: _Node) -> None:
        head = node.items[0].text if node.items and node.items[0].is_atom else None
        if node.is_atom or head not in ("declare-const", "assert"):
            raise self.outside(node, "(declare-const NAME Real) or (assert ...)")
        if head == "declare-const":
            self.declare(node)
        else:
            if len(node.items) != 2 or node.items[1].is_atom:
                raise self.outside(node, "(assert (OP ...))")
            self.assertion(node.items[1])

    def declare(self, node: _Node) -> None:
        items = node.items
        if len(items) != 3 or not items[1].is_atom or not items[2].is_atom or items[2].text != "Real":
            raise self.outside(node, "(declare-const X_i Real) or (declare-const Y_j Real)")
        match = _VARIABLE.match(items[1].text)
        if not match:
            raise self.outside(items[1], "a variable named X_i (inputs) or Y_j (outputs)")
        key = (match.group(1), int(match.group(2)))
        if key in self.declared:
            raise self.error(node, f"{items[1].text} is declared twice (first on line {self.declared[key]})")
        self.declared[key] = node.line

    def assertion(self, body: _Node) -> None:
        op = body.items[0].text if body.items and body.items[0].is_atom else None
        if op in ("<=", ">="):
            if len(body.items) != 3 or not body.items[1].is_atom:
                raise self.outside(body, f"({op} X_i NUMBER)")
            index = self.variable(body.items[1], "X")
            value = self.number(body.items[2])
            bounds = self.upper if op == "<=" else self.lower
            if index in bounds:
                raise self.error(body, f"X_{index} has a second {'upper' if op == '<=' else 'lower'} bound (the "
                                       f"first is on line {bounds[index][1]})")
            bounds[index] = (value, body.line)
        elif op == "or":
            self.disjunction(body)
        else:
            raise self.outside(body, "an input bound (<= X_i NUMBER) / (>= X_i NUMBER), or the output property "
                                     "(or (and (>= Y_j Y_y)) ...)")

    def disjunction(self, body: _Node) -> None:
        if self.output is not None:
            raise self.error(body, f"a second output property (the first is on line {self.output[2]}); sdpcert "
                                   f"reads one one-vs-all disjunction")
        label: Optional[int] = None
        others: list[int] = []
        for term in body.items[1:]:
            if term.is_atom or len(term.items) != 2 or term.items[0].text != "and" or term.items[1].is_atom:
                raise self.outside(term, "(and (>= Y_j Y_y))")
            atom = term.items[1]
            if len(atom.items) != 3 or atom.items[0].text != ">=" or not (atom.items[1].is_atom
                                                                          and atom.items[2].is_atom):
                raise self.outside(atom, "(>= Y_j Y_y)")
            j, y = self.variable(atom.items[1], "Y"), self.variable(atom.items[2], "Y")
            if label is not None and y != label:
                raise self.error(atom, f"compares with Y_{y}, but the terms before compare with Y_{label}: a "
                                       f"robustness property has one label")
            if j == y:
                raise self.error(atom, f"(>= Y_{j} Y_{y}) compares a class with itself")
            if j in others:
                raise self.error(atom, f"Y_{j} appears twice in the disjunction")
            label = y
            others.append(j)
        if label is None:
            raise self.outside(body, "(or (and (>= Y_j Y_y)) ...) with at least one term")
        self.output = (label, others, body.line)

    def result(self) -> RobustnessProperty:
        where = f"{self.source}: "
        inputs = sorted(i for kind, i in self.declared if kind == "X")
        outputs = sorted(j for kind, j in self.declared if kind == "Y")
        for kind, indices in (("X", inputs), ("Y", outputs)):
            if indices != list(range(len(indices))):
                missing = min(set(range(len(indices) + 1)) - set(indices))
                raise VnnlibError(f"{where}{kind}_{missing} is not declared, but {kind}_{max(indices)} is: the "
                                  f"variables must be numbered 0, 1, 2, ...")
        if not inputs:
            raise VnnlibError(f"{where}no inputs declared ((declare-const X_0 Real) ...)")
        d, k = len(inputs), len(outputs)
        for bounds, word in ((self.lower, "lower (>= X_i ...)"), (self.upper, "upper (<= X_i ...)")):
            missing = [i for i in inputs if i not in bounds]
            if missing:
                raise VnnlibError(f"{where}line {self.declared[('X', missing[0])]}: X_{missing[0]} has no {word} "
                                  f"bound ({len(missing)} input(s) lack one): sdpcert reads a bounded box")
        lo = np.array([self.lower[i][0] for i in range(d)], dtype=np.float64)
        hi = np.array([self.upper[i][0] for i in range(d)], dtype=np.float64)
        empty = np.flatnonzero(lo > hi)
        if empty.size:
            i = int(empty[0])
            raise VnnlibError(f"{where}line {self.upper[i][1]}: the box is empty: X_{i} <= {hi[i]!r} but "
                              f"X_{i} >= {lo[i]!r} (line {self.lower[i][1]})")
        if self.output is None:
            raise VnnlibError(f"{where}no output property (assert (or (and (>= Y_j Y_y)) ...))")
        label, others, line = self.output
        if k < 2:
            raise VnnlibError(f"{where}line {line}: a robustness property needs at least 2 outputs; {k} declared")
        missing = sorted(set(range(k)) - {label} - set(others))
        if missing:
            raise VnnlibError(f"{where}line {line}: the disjunction leaves out Y_{missing[0]} ({len(missing)} of "
                              f"the {k - 1} classes other than {label}): sdpcert reads the one-vs-all property, "
                              f"every other class once")
        lo.setflags(write=False)
        hi.setflags(write=False)
        return RobustnessProperty(lo=lo, hi=hi, y=label, k=k, source=self.source)


def read_vnnlib(path: str | os.PathLike) -> RobustnessProperty:
    """The :class:`RobustnessProperty` of a VNNLIB file of the subset :func:`write_vnnlib` writes (module
    docstring); anything else is a :class:`VnnlibError` naming the line."""
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise VnnlibError(f"{source}: no such VNNLIB file")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[:exc.start].count(b"\n") + 1
        raise VnnlibError(f"{source}: line {line}: not UTF-8 text (a VNNLIB file is text)") from exc
    reader = _Reader(source)
    for node in _parse(text, source):
        reader.form(node)
    return reader.result()


# ----------------------------------------------------------------------------------------------- answering
@dataclass
class VerifyResult:
    """What :func:`verify_property` found. ``answer``: "unsat", "sat" or "unknown"; ``method``: the certification
    method that proved unsat; ``x``, ``logits``, ``margin``, ``worst_class``: the counterexample of "sat" (float64,
    re-checked: ``margin = logits[worst_class] - logits[y] >= 0``); ``tried``: (stage, seconds, outcome) of what ran,
    in order; ``reason``: why the answer is unknown."""

    answer: str
    method: Optional[str] = None
    x: Optional[np.ndarray] = None
    logits: Optional[np.ndarray] = None
    margin: Optional[float] = None
    worst_class: Optional[int] = None
    tried: list = field(default_factory=list)
    reason: str = ""


def certification_ball(prop: RobustnessProperty) -> tuple[np.ndarray, float, tuple[np.ndarray, np.ndarray]]:
    """(centre, eps, domain) with [centre - eps, centre + eps] ∩ domain exactly the property's box (a float step
    larger on coordinates where lo = hi): see the module docstring."""
    center = prop.center
    # each difference is one rounding to nearest: one float step up makes eps >= the exact distance to either end
    eps = float(np.nextafter(np.maximum(center - prop.lo, prop.hi - center), np.inf).max())
    hi = np.where(prop.hi > prop.lo, prop.hi, np.nextafter(prop.hi, np.inf))
    return center, eps, (np.array(prop.lo), hi)


def _box_net(net: Any, lo: np.ndarray, hi: np.ndarray) -> Any:
    """The network as a function of z in [0, 1]^d with x = lo + (hi - lo) z: PGD's box [0, 1] is then exactly the
    property's box. Only a search aid: every point it finds is mapped back and re-checked on ``net`` itself."""
    from .model import TwoLayerNet

    with np.errstate(over="ignore", invalid="ignore"):
        W = net.W * (hi - lo)[None, :]
        b = net.b + net.W @ lo
    return TwoLayerNet(W, b, net.V, net.b2, activation=net.activation)


def _margin(net: Any, x: np.ndarray, y: int) -> tuple[np.ndarray, float, int]:
    """(float64 logits, max_{j != y} f_j - f_y, that j) at x, with numpy (TwoLayerNet.forward)."""
    with np.errstate(over="ignore", invalid="ignore"):
        logits = net.forward(x)
    scores = np.array(logits, dtype=np.float64)
    scores[y] = -np.inf
    j = int(np.argmax(scores))
    return logits, float(logits[j] - logits[y]), j


def verify_property(net: Any, prop: RobustnessProperty, methods: Sequence[str] = ("best",),
                    timeout: Optional[float] = None, steps: int = 100, restarts: int = 5, seed: int = 0,
                    log: Optional[Callable[[str], None]] = None) -> VerifyResult:
    """Answer ``prop`` for the :class:`~sdpcert.model.TwoLayerNet` ``net`` (module docstring): each certification
    method in ``methods`` in turn until one proves the box (``unsat``), then PGD (``steps`` x ``restarts``, margin
    loss, seeded) inside the box (``sat`` only for a point re-checked in float64 numpy: inside the box, margin >= 0),
    else ``unknown``. ``timeout`` (seconds) is checked between the stages: a stage that has started runs to its end.
    ``ShapeError`` when the property's d or k is not the net's."""
    from . import attacks
    from .certify import Certifier
    from .training import torch_threads

    say = log if log is not None else (lambda message: None)
    if prop.d != net.d or prop.k != net.k:
        named = f" {prop.source}" if prop.source else ""
        raise ShapeError(f"the property{named} has d = {prop.d} inputs and k = {prop.k} outputs, but the model has "
                         f"d = {net.d} and k = {net.k}")
    if timeout is not None and not (np.isfinite(timeout) and timeout > 0):
        raise SdpcertError(f"timeout must be positive and finite (seconds); got {timeout}")
    steps, restarts = positive_int("steps", steps), positive_int("restarts", restarts)
    start = time.perf_counter()
    result = VerifyResult("unknown")

    def out_of_time(stage: str) -> bool:
        if timeout is not None and time.perf_counter() - start >= timeout:
            result.reason = f"timeout of {timeout:g} s reached before {stage}"
            return True
        return False

    center, eps, domain = certification_ball(prop)
    certifier = Certifier(net, input_domain=domain)
    for method in methods:
        if out_of_time(f"method {method}"):
            return result
        t0 = time.perf_counter()
        certified = bool(certifier.certify(center[None, :], np.array([prop.y]), eps, method).certified[0])
        result.tried.append((method, time.perf_counter() - t0, "certified" if certified else "not certified"))
        say(f"{method}: {'certified' if certified else 'not certified'} ({time.perf_counter() - t0:.2f} s)")
        if certified:
            result.answer, result.method = "unsat", method
            return result
    if out_of_time("the attack"):
        return result
    t0 = time.perf_counter()
    lo, hi = prop.lo, prop.hi
    candidates = [center]
    try:
        box_net = _box_net(net, lo, hi)
    except SdpcertError as exc:  # the rescaled weights overflow: search the centre only
        say(f"PGD skipped: the network rescaled to the box is not finite ({exc})")
    else:
        with torch_threads(1):  # one example: a second thread only waits at barriers (0.5 s vs 7.5 s, measured)
            z_adv, _ = attacks.pgd(box_net, np.full((1, net.d), 0.5), np.array([prop.y]), 0.5, steps=steps,
                                   restarts=restarts, random_start=True, loss="margin", seed=seed)
        candidates.insert(0, np.clip(lo + (hi - lo) * z_adv[0], lo, hi))
    for x in candidates:
        x = np.asarray(x, dtype=np.float64)
        inside = bool(np.all(lo <= x) and np.all(x <= hi))
        logits, margin, j = _margin(net, x, prop.y)
        if inside and np.isfinite(margin) and margin >= 0:
            result.answer, result.x, result.logits, result.margin, result.worst_class = "sat", x, logits, margin, j
            break
    seconds = time.perf_counter() - t0
    result.tried.append(("pgd", seconds, "counterexample" if result.answer == "sat" else "none found"))
    say(f"PGD ({steps} steps, {restarts} restarts): "
        f"{'counterexample, margin ' + repr(result.margin) if result.answer == 'sat' else 'none found'} "
        f"({seconds:.2f} s)")
    if result.answer == "unknown":
        result.reason = "not certified by " + ", ".join(methods) + " and PGD found no counterexample"
    return result


def write_counterexample(path: str | os.PathLike, x: Any, logits: Any) -> Path:
    """Write a counterexample in VNN-COMP's form ``((X_0 v)\\n (X_1 v)\\n ... (Y_0 v) ... (Y_{k-1} v))``, every value
    a decimal that reads back as the same float64 (:func:`format_number`). Written whole or not at all."""
    x = np.asarray(x, dtype=np.float64).ravel()
    logits = np.asarray(logits, dtype=np.float64).ravel()
    entries = [f"(X_{i} {format_number(v)})" for i, v in enumerate(x)]
    entries += [f"(Y_{j} {format_number(v)})" for j, v in enumerate(logits)]
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("(" + "\n ".join(entries) + ")\n")
    os.replace(tmp, path)
    return path
