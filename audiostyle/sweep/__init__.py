"""Ray Tune glue: a hyperparameter sweep of one method, Optuna as the searcher, results in the Parquet store."""

from audiostyle.sweep._run import *  # noqa: F401,F403
from audiostyle.sweep._run import _find_manifest, _new_sweep_id  # noqa: F401
