"""Data: data sets (bundled digits, tfds names, image folders), token shards, Beam tokenization,
training loader. Importing this package registers the `digits` tfds builder."""

from elt.data import digits  # noqa: F401  (tfds registration side effect)
from elt.data.datasets import ImageDataset, load_image_dataset  # noqa: F401
