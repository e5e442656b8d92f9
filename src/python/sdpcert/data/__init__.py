"""The data: MNIST from the original IDX files, the slice that ships with the package, or any IDX / .npz data set.

- ``idx.py``: the IDX format (header, payload length, gzip) and the published md5 of each file.
- ``mnist.py``: where the files are (``resolve_mnist_folder``), ``download_mnist``, ``load_mnist``/``load_mnist_raw``.
- ``sample.py``: ``load_mnist_sample``, the packaged 2000 + 1000 images, checked by sha256 (``sample_dataset``: the
  same as a ``Dataset``).
- ``dataset.py``: ``load_dataset``, any folder of MNIST-format IDX files (Fashion-MNIST, KMNIST, EMNIST) or an
  ``.npz`` with ``X`` and ``y``, checked, with its name, size and sha256 (``Dataset``).
"""

from .idx import IMAGES_MAGIC, LABELS_MAGIC, MNIST_MD5, parse_idx
from .mnist import (MNIST_DIR_ENV, MNIST_FILES, MNIST_MIRRORS, download_mnist, load_mnist, load_mnist_raw,
                    resolve_mnist_folder)
from .dataset import MNIST_SIZES, Dataset, load_dataset
from .sample import SAMPLE_ARRAYS, SAMPLE_NAME, load_mnist_sample, sample_dataset

__all__ = [
    "load_dataset",
    "Dataset",
    "MNIST_SIZES",
    "load_mnist",
    "load_mnist_raw",
    "load_mnist_sample",
    "sample_dataset",
    "SAMPLE_NAME",
    "download_mnist",
    "parse_idx",
    "resolve_mnist_folder",
    "MNIST_FILES",
    "MNIST_MD5",
    "MNIST_MIRRORS",
    "MNIST_DIR_ENV",
    "SAMPLE_ARRAYS",
    "IMAGES_MAGIC",
    "LABELS_MAGIC",
]
