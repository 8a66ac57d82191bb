"""Teacher outputs cached on disk in shards, and streamed back for `fit`.

`precompute_teacher_outputs(teacher, x, directory=path)` writes the
teacher's outputs on `x` in shards of `shard_size` examples, as plain `.npy`
files beside a `manifest.json` (format, teacher and data fingerprints,
`top_k`, dtype, example count, and each shard's file sizes). A shard is
recorded in the manifest only once its files are complete, so a write that
was interrupted resumes where it stopped: running the same call again
computes the missing shards alone.

`CachedTeacherOutputs(path, x, y)` is a `keras.utils.PyDataset` yielding
`(x, with_teacher_outputs(y, outputs)[, sample_weight])` batches for any
distiller's `fit`. It holds one shard in memory at a time, so memory does
not grow with the cache; every epoch it shuffles the order of the shards
and the examples inside each shard (inputs and outputs travel together), and
with `process_count > 1` each process reads its own shards. A cache whose
data fingerprint does not match `x`, a truncated shard or a manifest written
for another teacher is refused before any batch.

PyDataset (not tf.data or grain) because it works on every backend, feeds
`fit` as it is, and reads NumPy files with NumPy: no TensorFlow needed on a
JAX or PyTorch machine.
"""

import hashlib
import json
import math
import os

import keras
import numpy as np

from keras_distill._training.step import LABELS
from keras_distill._training.step import TEACHER_LOGITS
from keras_distill._training.step import TOP_K_INDICES
from keras_distill._training.step import TOP_K_LOG_PROBS
from keras_distill._validate import check_int

MANIFEST = "manifest.json"
FORMAT = "keras_distill.teacher_cache/1"


def teacher_fingerprint(teachers):
    """sha256 of the teachers' classes, output shapes and weights."""
    digest = hashlib.sha256()
    for model in teachers:
        digest.update(type(model).__name__.encode())
        for weight in model.get_weights():
            weight = np.ascontiguousarray(weight)
            digest.update(str((weight.shape, weight.dtype.str)).encode())
            digest.update(weight.tobytes())
    return digest.hexdigest()


def data_fingerprint(x):
    """sha256 of the inputs' shapes, dtypes and bytes (a dict by sorted key)."""
    digest = hashlib.sha256()
    leaves = [x[key] for key in sorted(x)] if isinstance(x, dict) else keras.tree.flatten(x)
    for leaf in leaves:
        leaf = np.ascontiguousarray(np.asarray(leaf))
        digest.update(str((leaf.shape, leaf.dtype.str)).encode())
        digest.update(leaf.tobytes())
    return digest.hexdigest()


def _examples(x):
    return int(np.asarray(keras.tree.flatten(x)[0]).shape[0])


def _take(x, index):
    return keras.tree.map_structure(lambda array: np.asarray(array)[index], x)


def _files(shard, top_k):
    names = ("indices", "log_probs") if top_k else ("logits",)
    return {name: f"shard-{shard:05d}.{name}.npy" for name in names}


def write(directory, x, outputs_of, *, fingerprint, top_k, dtype, shard_size, overwrite):
    """Writes (or resumes) the cache of `outputs_of(inputs)` over `x` in
    `directory`; returns the manifest."""
    shard_size = check_int(shard_size, "shard_size", example=65536, at_least=1)
    count = _examples(x)
    expected = {
        "format": FORMAT,
        "teacher_fingerprint": fingerprint,
        "data_fingerprint": data_fingerprint(x),
        "top_k": top_k,
        "dtype": dtype,
        "examples": count,
        "shard_size": shard_size,
    }
    os.makedirs(directory, exist_ok=True)
    manifest = _read_manifest(directory)
    if manifest is not None and not overwrite:
        differing = [key for key in expected if manifest.get(key) != expected[key]]
        if differing:
            raise ValueError(
                f"{directory!r} holds a teacher cache written with other settings ({', '.join(differing)} "
                f"differ: {', '.join(f'{k}={manifest.get(k)!r}' for k in differing[:3])}). Pass another "
                "directory, or overwrite=True to replace it."
            )
    if manifest is None or overwrite:
        manifest = {**expected, "shards": []}
    done = {entry["index"] for entry in manifest["shards"] if _complete(directory, entry)}
    manifest["shards"] = [entry for entry in manifest["shards"] if entry["index"] in done]
    for shard in range(math.ceil(count / shard_size)):
        if shard in done:
            continue
        start, stop = shard * shard_size, min(count, (shard + 1) * shard_size)
        outputs = outputs_of(_take(x, slice(start, stop)))
        arrays = (
            {"indices": outputs[TOP_K_INDICES], "log_probs": outputs[TOP_K_LOG_PROBS]} if top_k else {"logits": outputs}
        )
        files = _files(shard, top_k)
        sizes = {}
        for name, array in arrays.items():
            path = os.path.join(directory, files[name])
            np.save(path + ".partial.npy", np.ascontiguousarray(array))
            os.replace(path + ".partial.npy", path)
            sizes[name] = os.path.getsize(path)
        manifest["shards"].append({"index": shard, "start": start, "stop": stop, "files": files, "bytes": sizes})
        manifest["shards"].sort(key=lambda entry: entry["index"])
        _write_manifest(directory, manifest)
    _write_manifest(directory, manifest)
    return manifest


def _complete(directory, entry):
    return all(
        os.path.isfile(os.path.join(directory, name))
        and os.path.getsize(os.path.join(directory, name)) == entry["bytes"][key]
        for key, name in entry["files"].items()
    )


def _read_manifest(directory):
    path = os.path.join(directory, MANIFEST)
    if not os.path.isfile(path):
        return None
    with open(path) as handle:
        return json.load(handle)


def _write_manifest(directory, manifest):
    path = os.path.join(directory, MANIFEST)
    with open(path + ".partial", "w") as handle:
        json.dump(manifest, handle, indent=1)
    os.replace(path + ".partial", path)


class CachedTeacherOutputs(keras.utils.PyDataset):
    """Batches of `(x, targets[, sample_weight])` from a teacher cache on
    disk (`precompute_teacher_outputs(..., directory=path)`), for `fit`.

    Args:
        directory: The cache's directory.
        x: The inputs the cache was computed on (arrays, or a dict of
            them; a `np.load(..., mmap_mode="r")` array keeps them on disk
            too). Their fingerprint must match the manifest's.
        y: Labels, or None to distill from the teacher alone.
        sample_weight: Optional weights, one per example (or per token).
        batch_size: Examples per batch. Batches do not cross shards.
        shuffle: Shuffle the shards' order and the examples inside each
            shard every epoch (inputs and outputs together). A distiller's
            `fit` then leaves Keras' own shuffling of the batches off: it
            would read a different shard for nearly every batch.
        seed: Seed of the shuffling.
        teacher: Optional teacher (or list): refused if the cache was
            written for other weights.
        process_index, process_count: With several processes (one per
            host), each reads shards `process_index::process_count`.
        **kwargs: `keras.utils.PyDataset`'s (`workers`, ...).
    """

    #: Read by a distiller's `fit`, which then leaves Keras' batch shuffle off.
    shuffles_itself = True

    def __init__(
        self,
        directory,
        x,
        y=None,
        sample_weight=None,
        *,
        batch_size=32,
        shuffle=True,
        seed=0,
        teacher=None,
        process_index=0,
        process_count=1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.directory = str(directory)
        manifest = _read_manifest(self.directory)
        if manifest is None or manifest.get("format") != FORMAT:
            raise ValueError(
                f"{self.directory!r} holds no teacher cache ({MANIFEST} is missing or not one). Write it with "
                "keras_distill.precompute_teacher_outputs(teacher, x, directory=...)."
            )
        self.batch_size = check_int(batch_size, "batch_size", example=32, at_least=1)
        process_count = check_int(process_count, "process_count", example=1, at_least=1)
        process_index = check_int(process_index, "process_index", example=0, at_least=0, at_most=process_count - 1)
        count = _examples(x)
        if count != manifest["examples"] or data_fingerprint(x) != manifest["data_fingerprint"]:
            raise ValueError(
                f"The cache in {self.directory!r} was computed on other inputs than `x` ({manifest['examples']} "
                f"examples there, {count} here, and their fingerprints differ): its outputs would be paired with "
                "the wrong examples. Pass the inputs it was computed on, in the same order, or write a new cache."
            )
        if teacher is not None:
            teachers = list(teacher) if isinstance(teacher, (list, tuple)) else [teacher]
            if teacher_fingerprint(teachers) != manifest["teacher_fingerprint"]:
                raise ValueError(
                    f"The cache in {self.directory!r} was written for a teacher with other weights than "
                    f"{', '.join(repr(m.name) for m in teachers)}. Write a new cache for this teacher."
                )
        expected = math.ceil(count / manifest["shard_size"])
        shards = manifest["shards"]
        if len(shards) != expected:
            raise ValueError(
                f"The cache in {self.directory!r} is incomplete: {len(shards)} of {expected} shards were written "
                "(an interrupted write). Run the same precompute_teacher_outputs(..., directory=...) call again "
                "to finish it."
            )
        for entry in shards:
            if not _complete(self.directory, entry):
                raise ValueError(
                    f"Shard {entry['index']} of the cache in {self.directory!r} is missing or truncated "
                    f"({', '.join(entry['files'].values())}). Run precompute_teacher_outputs(..., directory=...) "
                    "again: it rewrites the shards that are not complete."
                )
        self.manifest = manifest
        self.shards = shards[process_index::process_count]
        self.x, self.y, self.sample_weight = x, y, sample_weight
        self.shuffle = shuffle
        self._rng = np.random.default_rng(seed)
        self._loaded = (None, None)
        self._plan = self._make_plan()

    def _make_plan(self):
        """`(shard position, example indices within the shard)` per batch."""
        order = list(range(len(self.shards)))
        if self.shuffle:
            self._rng.shuffle(order)
        plan = []
        for position in order:
            entry = self.shards[position]
            size = entry["stop"] - entry["start"]
            local = self._rng.permutation(size) if self.shuffle else np.arange(size)
            plan += [(position, local[start : start + self.batch_size]) for start in range(0, size, self.batch_size)]
        # Smaller batches (a shard's remainder) last, as Keras orders arrays:
        # each new batch shape compiles the step again, mid-epoch otherwise.
        return [batch for batch in plan if len(batch[1]) == self.batch_size] + [
            batch for batch in plan if len(batch[1]) < self.batch_size
        ]

    def __len__(self):
        return len(self._plan)

    def on_epoch_end(self):
        self._plan = self._make_plan()

    def _shard(self, position):
        if self._loaded[0] != position:
            entry = self.shards[position]
            arrays = {name: np.load(os.path.join(self.directory, file)) for name, file in entry["files"].items()}
            self._loaded = (position, arrays)
        return self._loaded[1]

    def __getitem__(self, index):
        position, local = self._plan[index]
        arrays = self._shard(position)
        start = self.shards[position]["start"]
        rows = local + start
        if "logits" in arrays:
            outputs = arrays["logits"][local]
        else:
            outputs = {TOP_K_INDICES: arrays["indices"][local], TOP_K_LOG_PROBS: arrays["log_probs"][local]}
        targets = {TEACHER_LOGITS: outputs}
        if self.y is not None:
            targets[LABELS] = _take(self.y, rows)
        batch = (_take(self.x, rows), targets)
        if self.sample_weight is not None:
            batch += (_take(self.sample_weight, rows),)
        return batch
