"""Data: data sets (bundled digits, tfds names, image folders), shards of latents by spec, Beam
tokenization, training loader. Import the module you need: this package imports nothing, so
reading shards (the train stage) does not pull in tensorflow-datasets or the dataset builders."""
