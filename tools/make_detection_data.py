"""Builds keras_tl/datasets/detection_demo.tar.gz: a small object-detection
dataset made of real photos, in COCO layout.

Four objects cut out of photos that ship with scikit-image (public domain /
CC0) are pasted, 0 to 5 per image, at varying scale and aspect, mirrored and
relit, onto random crops of real backgrounds (scikit-image's textures and
Hubble deep field, scikit-learn's two CC BY 2.0 sample photos), 128x128
pixels. Objects may overlap (each stays at least half visible) and run off
the edge (at least 70 % inside); each box bounds the visible part of its
object. The seed is fixed: running this again writes the same images and
boxes (byte-identical with the same Pillow/libjpeg).

    .venv/bin/python tools/make_detection_data.py [--out keras_tl/datasets/detection_demo.tar.gz]

Layout inside the archive:

    detection_demo/train/instances.json   detection_demo/train/images/0000.jpg ...
    detection_demo/test/instances.json    detection_demo/test/images/0000.jpg ...
"""

import argparse
import gzip
import io
import json
import os
import tarfile

import numpy as np
from PIL import Image

SEED = 20240611
IMAGE_SIZE = 128
SPLITS = {"train": 400, "test": 100}
MAX_OBJECTS = 5
SIDE_RANGE = (18, 72)  # longest side of a pasted object, pixels
MIN_SHORT_SIDE = 7
MIN_VISIBLE = 0.5  # of an object, after the objects pasted over it
MIN_INSIDE = 0.7  # of an object, inside the image
JPEG_QUALITY = 85

# name: (scikit-image function, crop xmin, ymin, xmax, ymax in the photo, mask shape)
OBJECTS = {
    "astronaut": ("astronaut", (105, 5, 315, 300), "ellipse"),  # head and helmet ring
    "cat": ("chelsea", (40, 0, 410, 300), "ellipse"),  # the cat's face
    "cup": ("coffee", (75, 72, 482, 392), "ellipse"),  # espresso cup on its saucer
    "rocket": ("rocket", (301, 122, 343, 408), "rectangle"),  # Falcon 9 on the pad
}
BACKGROUNDS = ["china", "flower", "brick", "grass", "gravel", "hubble_deep_field"]
CLASS_NAMES = sorted(OBJECTS)


def _photo(name):
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return load_sample_image(name + ".jpg")
    import skimage.data

    image = getattr(skimage.data, name)()
    return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image[..., :3]


def _mask(height, width, shape):
    """Soft-edged alpha in [0, 1]: an ellipse, or a rectangle with feathered edges."""
    ys, xs = (np.arange(height) + 0.5) / height * 2 - 1, (np.arange(width) + 0.5) / width * 2 - 1
    if shape == "ellipse":
        radius = np.sqrt(ys[:, None] ** 2 + xs[None, :] ** 2)
        return np.clip((1 - radius) * 8, 0, 1)
    edge = np.minimum(1 - np.abs(ys)[:, None], 1 - np.abs(xs)[None, :])
    return np.clip(edge * 12, 0, 1)


def _background(rng, photos):
    photo = photos[BACKGROUNDS[rng.integers(len(BACKGROUNDS))]]
    height, width = photo.shape[:2]
    side = int(rng.integers(96, min(height, width) + 1))
    top, left = rng.integers(height - side + 1), rng.integers(width - side + 1)
    crop = Image.fromarray(photo[top:top + side, left:left + side]).resize(
        (IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR)
    image = np.asarray(crop, "float32")
    if rng.random() < 0.5:
        image = image[:, ::-1]
    if np.ptp(image.reshape(-1, 3).mean(axis=0)) < 1:  # a grey texture: tint it
        image = image * rng.uniform(0.6, 1.2, 3)
    return np.clip(image, 0, 255)


def _object(rng, cutouts, class_id):
    pixels, alpha = cutouts[CLASS_NAMES[class_id]]
    height, width = alpha.shape
    aspect = width / height * np.exp(rng.uniform(-0.15, 0.15))
    side = np.exp(rng.uniform(*np.log(SIDE_RANGE)))
    side = max(side, MIN_SHORT_SIDE / min(aspect, 1 / aspect))  # the rocket stays visible
    new_w, new_h = (side, side / aspect) if aspect >= 1 else (side * aspect, side)
    size = (max(int(round(new_w)), 4), max(int(round(new_h)), 4))
    patch = np.asarray(Image.fromarray(pixels).resize(size, Image.BILINEAR), "float32")
    mask = np.asarray(Image.fromarray((alpha * 255).astype("uint8")).resize(size, Image.BILINEAR),
                      "float32") / 255
    if rng.random() < 0.5:
        patch, mask = patch[:, ::-1], mask[:, ::-1]
    patch = np.clip(patch * rng.uniform(0.8, 1.2), 0, 255)
    return patch, mask


def _place(mask, top, left):
    """The object's alpha on the full image (cut at the edges)."""
    full = np.zeros((IMAGE_SIZE, IMAGE_SIZE), "float32")
    h, w = mask.shape
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + h, IMAGE_SIZE), min(left + w, IMAGE_SIZE)
    if y1 > y0 and x1 > x0:
        full[y0:y1, x0:x1] = mask[y0 - top:y1 - top, x0 - left:x1 - left]
    return full


def _compose(rng, photos, cutouts):
    image = _background(rng, photos)
    placed = []  # (class id, full-image alpha, patch, top, left)
    for _ in range(int(rng.integers(0, MAX_OBJECTS + 1))):
        class_id = int(rng.integers(len(CLASS_NAMES)))
        patch, mask = _object(rng, cutouts, class_id)
        h, w = mask.shape
        for _ in range(20):  # placements tried before giving the object up
            top = int(rng.integers(-h // 3, IMAGE_SIZE - 2 * h // 3 + 1))
            left = int(rng.integers(-w // 3, IMAGE_SIZE - 2 * w // 3 + 1))
            alpha = _place(mask, top, left)
            if alpha.sum() < MIN_INSIDE * mask.sum():
                continue
            if all(_visible(placed, i, alpha) >= MIN_VISIBLE for i in range(len(placed))):
                placed.append((class_id, alpha, patch, top, left))
                break
    boxes, class_ids = [], []
    for index, (class_id, alpha, patch, top, left) in enumerate(placed):
        colours = np.zeros_like(image)
        h, w = patch.shape[:2]
        y0, x0 = max(top, 0), max(left, 0)
        y1, x1 = min(top + h, IMAGE_SIZE), min(left + w, IMAGE_SIZE)
        colours[y0:y1, x0:x1] = patch[y0 - top:y1 - top, x0 - left:x1 - left]
        image = image * (1 - alpha[..., None]) + colours * alpha[..., None]
        visible = alpha * np.prod([1 - p[1] for p in placed[index + 1:]], axis=0) if index + 1 < len(
            placed) else alpha
        ys, xs = np.nonzero(visible > 0.5)
        if len(xs) == 0 or np.ptp(xs) < 4 or np.ptp(ys) < 4:
            continue
        boxes.append([int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1])
        class_ids.append(class_id)
    return np.clip(np.round(image), 0, 255).astype("uint8"), boxes, class_ids


def _visible(placed, index, new_alpha):
    """Fraction of object `index` still visible under the later objects and `new_alpha`."""
    alpha = placed[index][1]
    cover = np.prod([1 - p[1] for p in placed[index + 1:]] + [1 - new_alpha], axis=0)
    return (alpha * cover).sum() / alpha.sum()


def build(out_path):
    """Writes the archive and returns per-split statistics."""
    rng = np.random.default_rng(SEED)
    photos = {name: _photo(name) for name in BACKGROUNDS}
    cutouts = {}
    for name, (photo, (x0, y0, x1, y1), shape) in OBJECTS.items():
        pixels = _photo(photo)[y0:y1, x0:x1]
        cutouts[name] = (np.ascontiguousarray(pixels), _mask(y1 - y0, x1 - x0, shape))
    stats = {}
    # gzip without a time stamp or file name: the same bytes on every run
    with open(out_path, "wb") as raw, gzip.GzipFile("", "wb", 9, raw, mtime=0) as packed, \
            tarfile.open(fileobj=packed, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for split, count in SPLITS.items():
            coco = {"images": [], "annotations": [],
                    "categories": [{"id": i + 1, "name": n} for i, n in enumerate(CLASS_NAMES)]}
            per_class = np.zeros(len(CLASS_NAMES), int)
            for image_id in range(count):
                image, boxes, class_ids = _compose(rng, photos, cutouts)
                file_name = f"{image_id:04d}.jpg"
                buffer = io.BytesIO()
                Image.fromarray(image).save(buffer, "JPEG", quality=JPEG_QUALITY)
                _add(archive, f"detection_demo/{split}/images/{file_name}", buffer.getvalue())
                coco["images"].append({"id": image_id + 1, "file_name": file_name,
                                       "width": IMAGE_SIZE, "height": IMAGE_SIZE})
                for (x0, y0, x1, y1), class_id in zip(boxes, class_ids):
                    coco["annotations"].append({
                        "id": len(coco["annotations"]) + 1, "image_id": image_id + 1,
                        "category_id": class_id + 1, "bbox": [x0, y0, x1 - x0, y1 - y0],
                        "area": (x1 - x0) * (y1 - y0), "iscrowd": 0})
                    per_class[class_id] += 1
            _add(archive, f"detection_demo/{split}/instances.json",
                 json.dumps(coco, separators=(",", ":")).encode())
            stats[split] = {"images": count, "objects": dict(zip(CLASS_NAMES, per_class.tolist())),
                            "negatives": count - len({a["image_id"] for a in coco["annotations"]})}
    stats["bytes"] = os.path.getsize(out_path)
    return stats


def _add(archive, name, data):
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644  # fixed metadata: same bytes each run
    archive.addfile(info, io.BytesIO(data))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = os.path.join(os.path.dirname(__file__), "..", "keras_tl", "datasets", "detection_demo.tar.gz")
    parser.add_argument("--out", default=os.path.normpath(default))
    args = parser.parse_args()
    print(json.dumps(build(args.out), indent=1))


if __name__ == "__main__":
    main()
