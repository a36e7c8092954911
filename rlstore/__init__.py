"""rlstore: a versioned store of RLDS datasets, with Beam ingest and tf.data/Reverb serving."""
__version__ = "0.1.0"

from rlstore.errors import BadInputError, RlstoreError, StoreError  # noqa: E402
from rlstore.store import Store  # noqa: E402

__all__ = ["Store", "RlstoreError", "StoreError", "BadInputError", "__version__"]
