"""The training loop: :func:`train` runs a :class:`~sdpcert.training.trainer.Trainer` epoch by epoch, evaluates
every epoch (clean test error; for the sdp objectives the proven dual certificate, for lp the proven LP
certificate, for crown-box the proven LP certificate over the ball intersected with the input box) and writes the
run folder (model, logs, checkpoint).
"""

from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from ..certify.lp import lp_worst_margins
from ..data import Dataset, load_dataset, sample_dataset
from ..errors import SdpcertError
from .config import CHECKPOINT_NAME, LOG_CSV_NAME, LOG_JSON_NAME, MODEL_NAME, TrainConfig
from .dual import certified_error_from_growth, dual_growth
from .trainer import Trainer, threads_for, torch_threads

__all__ = ["train", "load_split", "format_epoch", "write_logs"]

LogFn = Callable[[str], None]


# ----------------------------------------------------------------------------------------------- data
def load_split(data: Optional[str], split: str, limit: Optional[int]) -> Dataset:
    """``split`` of the data set ``data`` -- a folder of MNIST-format IDX files (MNIST, whose md5s are then checked,
    Fashion-MNIST, KMNIST, EMNIST) or an ``.npz`` with ``X`` and ``y``, read by :func:`~sdpcert.data.load_dataset`
    -- or of the packaged MNIST sample when ``data`` is None. An ``.npz`` is one set: both splits are all of it.
    ``X`` as stored (float32 for IDX pixels); ``X, y = load_split(...)`` unpacks it."""
    if data is None:
        return sample_dataset(split, limit=limit, dtype=np.float32)
    path = Path(data).expanduser()
    if not path.exists():
        raise SdpcertError(f"data {data}: no such folder or file (give a folder of MNIST-format IDX files or an .npz "
                           f"with X and y)")
    return load_dataset(path, split if path.is_dir() else None, limit=limit)


# ----------------------------------------------------------------------------------------------- outputs
def write_logs(out_dir: Path, config: TrainConfig, history: list, data: Optional[dict] = None) -> None:
    """``log.json`` (config, the data sets' descriptions when given, and every epoch's row) and ``log.csv`` (the
    rows' scalar fields) in ``out_dir``."""
    doc = {"config": config.to_dict(), **({"data": data} if data is not None else {}), "epochs": history}
    (out_dir / LOG_JSON_NAME).write_text(json.dumps(doc, indent=2, allow_nan=True) + "\n")
    fields: list[str] = []
    for row in history:
        for key in row:
            if key not in fields and not isinstance(row[key], (list, dict)):
                fields.append(key)
    with (out_dir / LOG_CSV_NAME).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for row in history:
            writer.writerow(row)


def format_epoch(row: dict) -> str:
    """One human-readable line for an epoch's log row."""
    text = (f"epoch {row['epoch']:>3}  loss {row['train_loss']:.4f}  clean {100 * row['clean_error']:.2f}%")
    if "lp_certified_error" in row:
        text += f"  LP-cert {100 * row['lp_certified_error']:.2f}% (eps {row['eps_train']:g}; trained at {row['lp_eps']:g})"
    if "lp_box_certified_error" in row:
        text += (f"  LP-cert over the box {100 * row['lp_box_certified_error']:.2f}% (eps {row['eval_eps']:g}; "
                 f"training radius {row['train_radius']:.4g}, kappa {row['kappa']:.3g})")
    if "dual_certified_error" in row:
        text += (f"  dual-cert {100 * row['dual_certified_error']:.2f}% (eps {row['eps_train']:g}, "
                 f"mean S_ij <= {row['dual_S_mean']:.4g})")
    return text + f"  lr {row['lr']:.0e}  {row['seconds']:.1f} s"


# ----------------------------------------------------------------------------------------------- driver
def train(config: TrainConfig, progress: bool = True, log: Optional[LogFn] = None) -> dict:
    """Train as ``config`` says on the data of ``config.data`` (:func:`load_split`; the net's d and k follow the data:
    k = max label + 1 over both splits, so k(k-1)/2 class pairs for the sdp objectives). Returns dict(net=TwoLayerNet,
    history=[per-epoch dicts], trainer=Trainer, paths={...} of the files written, data={"train": ..., "test": ...}:
    each set's name, size, sha256 and description, also in log.json). ``log(line)`` receives the two data lines, then
    one line per epoch; ``progress`` shows a rich bar."""
    import torch

    if not isinstance(config, TrainConfig):
        raise SdpcertError(f"train needs a TrainConfig; got {type(config).__name__}")
    train_set = load_split(config.data, "train", config.limit)
    test_set = load_split(config.data, "test", config.test_limit)
    if train_set.d != test_set.d:
        raise SdpcertError(f"the training data has d = {train_set.d} inputs but the test data has {test_set.d}")
    k = max(train_set.k, test_set.k)  # the net's classes: every label either split holds
    if config.objective == "at" and (train_set.X.min() < 0 or train_set.X.max() > 1):
        raise SdpcertError(f"objective at: its PGD keeps inputs in [0, 1], but the training data ({train_set.name}) "
                           f"lies in [{train_set.X.min():g}, {train_set.X.max():g}]")
    if config.objective == "crown-box" and config.input_domain is not None:
        lo, hi = config.input_domain
        for part, ds in (("training", train_set), ("test", test_set)):
            if len(ds.y) and (ds.X.min() < lo or ds.X.max() > hi):
                raise SdpcertError(f"objective crown-box: the {part} data ({ds.name}) lies in [{ds.X.min():g}, "
                                   f"{ds.X.max():g}], outside the input domain [{lo:g}, {hi:g}] the bounds assume "
                                   f"(set input_domain to a box that holds it, or None for the whole ball)")
    # the torch model trains in float32 (a rounded training input is still a training input); the test data keeps
    # its dtype, so the logged errors and certificates are about the points as given
    X, y = train_set.X.astype(np.float32, copy=False), train_set.y
    X_test, y_test = test_set.X, test_set.y
    data_info = {part: {**ds.info(), "description": ds.describe()} for part, ds in (("train", train_set),
                                                                                  ("test", test_set))}
    if log is not None:
        for part, info in data_info.items():
            log(f"{part} data: {info['description']}")
    out_dir = Path(config.out_dir) if config.out_dir is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = out_dir / CHECKPOINT_NAME if out_dir is not None else None

    with torch_threads(threads_for(config)):
        trainer = Trainer(config, d=X.shape[1], k=k)
        history: list = []
        if config.resume:
            if not ckpt_path.is_file():
                raise SdpcertError(f"cannot resume: {ckpt_path} does not exist")
            history = trainer.load_state(torch.load(ckpt_path, weights_only=True, map_location=trainer.device))
            if trainer.epoch > config.epochs:
                raise SdpcertError(f"the checkpoint has {trainer.epoch} epochs done, more than epochs={config.epochs}")
        X_t, y_t = torch.from_numpy(X), torch.from_numpy(y)
        n = len(y)
        steps_per_epoch = math.ceil(n / config.batch_size)
        bar = None
        if progress:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                           transient=True)
            bar.start()
        try:
            while trainer.epoch < config.epochs:
                epoch = trainer.epoch
                t0 = time.perf_counter()
                lr = trainer.lr_for(epoch)
                for group in trainer.optimizer.param_groups:
                    group["lr"] = lr
                row: dict[str, Any] = {"epoch": epoch + 1, "lr": lr}
                if config.objective == "lp":
                    row["lp_eps"] = trainer.lp_eps(epoch)
                if config.objective == "sdp-weighted" and epoch > 0 and epoch % config.weight_refresh_every == 0:
                    w = trainer.refresh_pair_weights(X, y)
                    row["pair_weights"] = w.tolist()
                order = torch.randperm(n, generator=trainer.generator)
                sums: dict[str, float] = {}
                task = bar.add_task(f"epoch {epoch + 1}/{config.epochs}", total=steps_per_epoch) if bar else None
                for s in range(steps_per_epoch):
                    idx = order[s * config.batch_size:(s + 1) * config.batch_size]
                    trainer.progress = epoch + s / steps_per_epoch
                    parts = trainer.step(X_t[idx].to(trainer.device), y_t[idx].to(trainer.device))
                    for key, value in parts.items():
                        sums[key] = sums.get(key, 0.0) + value
                    if bar is not None:
                        bar.update(task, advance=1)
                if bar is not None:
                    bar.remove_task(task)
                row["train_loss"] = sums["loss"] / steps_per_epoch
                for key, value in sums.items():
                    if key != "loss":
                        row[f"train_{key}"] = value / steps_per_epoch
                row["train_seconds"] = time.perf_counter() - t0
                net = trainer.net()
                row["clean_error"] = float((net.predict(X_test) != y_test).mean())
                if config.has_sdp_penalty:
                    t1 = time.perf_counter()
                    G, S = dual_growth(trainer.reg, net)
                    cert = certified_error_from_growth(net, X_test, y_test, config.eps_train, G)
                    upper = S[np.triu_indices(net.k, 1)]
                    row["eps_train"] = config.eps_train
                    row["dual_certified_error"] = cert["certified_error"]
                    row["dual_S_mean"] = float(upper.mean())
                    row["dual_S_max"] = float(upper.max())
                    row["dual_seconds"] = time.perf_counter() - t1
                if config.objective == "lp":  # the LP certificate the net is trained for, proven (certify's LP)
                    t1 = time.perf_counter()
                    worst = lp_worst_margins(net, X_test, y_test, config.certificate_eps)
                    row["eps_train"] = config.certificate_eps
                    row["lp_certified_error"] = float((worst >= 0).mean())
                    row["lp_seconds"] = time.perf_counter() - t1
                if config.objective == "crown-box":  # the proven LP (W-K slopes) over the ball and the input box
                    t1 = time.perf_counter()
                    row["train_radius"], row["kappa"] = trainer.certified_schedule(epoch + 1 - 1 / steps_per_epoch)
                    row["eval_eps"] = config.certificate_eps
                    worst = lp_worst_margins(net, X_test, y_test, config.certificate_eps,
                                             input_domain=config.input_domain)
                    row["lp_box_certified_error"] = float((worst >= 0).mean())
                    row["lp_seconds"] = time.perf_counter() - t1
                trainer.epoch += 1
                row["seconds"] = time.perf_counter() - t0
                history.append(row)
                if out_dir is not None:
                    net.save(out_dir / MODEL_NAME)
                    if config.snapshot_every and trainer.epoch % config.snapshot_every == 0:
                        net.save(out_dir / f"model_epoch{trainer.epoch:03d}.npz")
                    write_logs(out_dir, config, history, data_info)
                    tmp = ckpt_path.with_suffix(".pt.tmp")
                    torch.save(trainer.state(history), tmp)
                    tmp.replace(ckpt_path)
                if log is not None:
                    log(format_epoch(row))
        finally:
            if bar is not None:
                bar.stop()
        net = trainer.net()
        paths = {}
        if out_dir is not None:
            net.save(out_dir / MODEL_NAME)
            write_logs(out_dir, config, history, data_info)
            paths = {"model": str(out_dir / MODEL_NAME), "log_json": str(out_dir / LOG_JSON_NAME),
                     "log_csv": str(out_dir / LOG_CSV_NAME), "checkpoint": str(ckpt_path)}
    return {"net": net, "history": history, "trainer": trainer, "paths": paths, "data": data_info}
