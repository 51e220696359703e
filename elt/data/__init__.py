"""Data: data sets (bundled digits, tfds names, image folders), token shards, Beam tokenization,
training loader. Import the module you need: this package imports nothing, so reading token
shards (the train stage) does not pull in tensorflow-datasets or the dataset builders."""
