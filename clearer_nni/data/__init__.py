"""Data layer: image I/O, datasets, degradations, training patches and downloads.

Images are ``float32`` ``H x W x C`` arrays in [0, 1] (``C`` = 1 or 3); every bad input raises
:class:`DataError` (a ``ValueError``) naming the file and the problem. See docs/DATA.md.
"""
from .datasets import (
    DEFAULT_DATA_ROOT,
    SKIMAGE_SPLITS,
    ImageSet,
    available_datasets,
    default_data_root,
    holdout_split,
    list_images,
    load_dataset,
    register_dataset,
    search_sets,
)
from .degradations import (
    degradation_for,
    Degradation,
    CorrelatedNoise,
    GaussianNoise,
    JPEGCompression,
    RainStreaks,
    make_degradation,
    paper_noisy,
    protocol_noisy,
    standard_noisy,
)
from .images import (MAX_PIXELS, DataError, bit_depth, frame_count, load_image, max_pixels, probe_image, read_image,
                     set_max_pixels, to_channels, to_luma, write_image)
from .patches import (
    search_batches,
    PatchDataset,
    center_crop_multiple,
    dihedral,
    eval_pairs,
    fixed_batches,
    inverse_dihedral,
    make_loader,
    worker_init_fn,
)



def __getattr__(name: str):
    # imported lazily so that ``python -m clearer_nni.data.download`` does not import itself twice
    if name == "fetch_dataset":
        from .download import fetch_dataset

        return fetch_dataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "degradation_for",
    "search_batches",
    "DEFAULT_DATA_ROOT",
    "DataError",
    "Degradation",
    "CorrelatedNoise",
    "GaussianNoise",
    "ImageSet",
    "JPEGCompression",
    "PatchDataset",
    "RainStreaks",
    "SKIMAGE_SPLITS",
    "available_datasets",
    "bit_depth",
    "center_crop_multiple",
    "default_data_root",
    "dihedral",
    "eval_pairs",
    "fixed_batches",
    "fetch_dataset",
    "inverse_dihedral",
    "holdout_split",
    "list_images",
    "load_dataset",
    "make_degradation",
    "make_loader",
    "paper_noisy",
    "read_image",
    "load_image",
    "probe_image",
    "frame_count",
    "to_channels",
    "set_max_pixels",
    "max_pixels",
    "MAX_PIXELS",
    "register_dataset",
    "search_sets",
    "protocol_noisy",
    "standard_noisy",
    "to_luma",
    "worker_init_fn",
    "write_image",
]
