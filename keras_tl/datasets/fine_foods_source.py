"""How `amazon_fine_foods_{train,test}.csv.gz` were made from R's modeldata.

The Debian package r-cran-modeldata (1.1.0) stores `small_fine_foods`
(`training_data`, `testing_data`) in an R lazy-load database
(`data/Rdata.rdb` + `.rdx`): the index is a gzipped R serialization, each
object a 4-byte length, a type byte (`Z` = raw LZMA2) and the compressed
R serialization, which the pip package `rdata` parses. Not needed at run
time; kept to make the shipped files reproducible.
"""

import csv
import gzip
import lzma
import os

MODELDATA = "/usr/lib/R/site-library/modeldata/data"


def read_lazy_load_object(data_dir, name):
    """One object of an R package's lazy-load data base, as Python data.

    Example:
    >>> read_lazy_load_object(MODELDATA, "training_data").shape  # doctest: +SKIP
    (4000, 3)
    """
    import rdata

    with open(os.path.join(data_dir, "Rdata.rdx"), "rb") as f:
        index = rdata.conversion.convert(rdata.parser.parse_data(gzip.decompress(f.read())))
    offset, length = (int(v) for v in index["variables"][name])
    with open(os.path.join(data_dir, "Rdata.rdb"), "rb") as f:
        f.seek(offset)
        chunk = f.read(length)
    kind, body = chunk[4:5], chunk[5:]
    if kind == b"Z":
        raw = lzma.decompress(body, format=lzma.FORMAT_RAW,
                              filters=[{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}])
    else:  # zlib, R's default compression
        import zlib

        raw = zlib.decompress(chunk[4:])
    return rdata.conversion.convert(rdata.parser.parse_data(raw))


def build_fine_foods_csv(out_dir, data_dir=MODELDATA):
    """Writes the train/test CSVs (`product`, `text`, `label`), gzipped with
    a fixed mtime so the files are byte-for-byte repeatable.

    Example:
    >>> build_fine_foods_csv("keras_tl/datasets")  # doctest: +SKIP
    """
    for split, name in (("train", "training_data"), ("test", "testing_data")):
        frame = read_lazy_load_object(data_dir, name)
        path = os.path.join(out_dir, f"amazon_fine_foods_{split}.csv.gz")
        with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
            gz.write(_csv_text(frame).encode("utf-8"))


def _csv_text(frame):
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["product", "text", "label"])
    for product, review, score in zip(frame["product"], frame["review"], frame["score"]):
        writer.writerow([product, review, score])
    return out.getvalue()
