"""clearer-nni: CLEARER (Gou et al., NeurIPS 2020) multi-scale NAS for image restoration, on NNI 3.0."""
from setuptools import find_packages, setup

ONNX = ["onnx>=1.16", "onnxruntime>=1.18", "onnxscript>=0.3"]
TENSORBOARD = ["tensorboard>=2.14"]

setup(
    name="clearer-nni",
    version="0.1.0",
    description="CLEARER multi-scale neural architecture search for image restoration, as an NNI 3.0 plugin",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["clearer_nni", "clearer_nni.*"]),
    # space files, run recipes, NNI experiment files and the web server's loopback shim: found through
    # the package (clearer_nni.bundled), so an installed wheel needs no repository
    package_data={"clearer_nni": ["py.typed", "resources/search_spaces/*", "resources/recipes/*",
                                  "resources/experiments/*", "experiment/loopback.js",
                                  "bench/tables/*.csv", "bench/tables/*.json"]},
    install_requires=[
        "torch>=2.1",
        "nni==3.0",
        "pytorch-lightning==2.6.6",
        "setuptools<81",
        "numpy>=1.24",
        "scikit-image>=0.22",
        "pandas>=2.0",
        "matplotlib>=3.7",
        "PyYAML>=6.0",
        "tqdm>=4.60",
        "psutil>=5.9",
    ],
    # bm3d: only for benchmarks/quality.py --bm3d (its licence is non-commercial: never a dependency)
    # onnx: export-model --format onnx and restore --model *.onnx (none of the three pulls in torch)
    # tensorboard: the TensorBoard event files of search and retrain (NNI's web UI "TensorBoard" button)
    extras_require={"test": ["pytest>=7", "pytest-xdist>=3", *ONNX, *TENSORBOARD], "bm3d": ["bm3d"], "onnx": ONNX,
                    "tensorboard": TENSORBOARD},
    entry_points={"console_scripts": ["clearer-nni=clearer_nni.cli:main"]},
)
