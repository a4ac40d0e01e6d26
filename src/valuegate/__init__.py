"""valuegate: declarative ML experiments gated on business value."""

import os as _os

# Before any OpenMP runtime loads (xgboost's and scikit-learn's libgomp read this once, when
# they load): threads waiting for work sleep instead of spinning. Spinning threads take the
# cores that other processes' threads need; on a busy 2-core machine (load 14) an xgboost
# fit of 3,000 rows took 6.4 s with 2 spinning threads, 0.39 s passive (valuegate.resources).
# A user's own OMP_WAIT_POLICY wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
