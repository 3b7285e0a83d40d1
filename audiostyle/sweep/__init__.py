"""Hyperparameter sweeps of one method on Ray Tune, Optuna as the searcher, every trial in the Parquet store.

::

    from audiostyle import sweep
    result = sweep.run("shallow_cnn", samples=16, store="results")
    print(result.summary())

A sweep script (``sweeps/<method>.py``) declares a :class:`Budget` and what its space changes, and calls
:func:`main`. :func:`load_data` and :func:`prepare_data` are a sweep's data steps on their own (the benchmarks time
them); :func:`journal_storage` and :func:`artifact_store` open a store's Optuna study (the dashboard serves them). The modules behind this face, one job each:

``_plan``      the plan of a sweep (its manifest; resume reads it back)
``_run``       :func:`run`: the plan's steps, top to bottom
``_ray``       the Ray connection, storage and concurrency
``_prepare``   the dataset and ``method.prepare``, once, through the feature cache
``_search``    searchers (Optuna TPE / NSGA-II / random; failed trials are failed for Optuna)
``_screen``    proposals that cannot run on the data or cost over 10x the space's median, never launched
``_schedule``  schedulers (synchronous halving, ASHA, Pareto ASHA, PBT on the continuous fields)
``_trial``     the trainable: one trial of a method on a Ray worker
``_gpu``       a trial's device and GPU memory cap; GPU failures that are the platform's
``_kernels``   librosa's numba kernels compiled one process at a time
``_exit``      a stopped trial's process waits for its training thread instead of aborting
``_shared``    on a cluster, refuse a local store or storage the trial nodes do not share
``_wait``      the warning when trials wait long for resources
``_callback``  the store callback: every ended trial's row and history
``_monitor``   dashboard names and metrics, the console table
``_console``   the quiet console: one line per ended trial, Ray's detail with ``-v``
``_study``     the sweep's Optuna study and its trials' artifacts in the store (``python -m audiostyle.dashboard``)
``_result``    :class:`SweepResult`, ranked as ``python -m audiostyle.best`` ranks
``_cli``       :class:`Budget`, the shared flags, :func:`main`
``_keys``      the result keys trials report
"""

from audiostyle.metrics import PARETO_OBJECTIVES, Objective
from audiostyle.methods.space import Choice, Float, Given, Int, Space
from audiostyle.sweep._cli import Budget, main
from audiostyle.sweep._plan import Plan
from audiostyle.sweep._prepare import load_data, prepare_data
from audiostyle.sweep._result import SweepResult
from audiostyle.sweep._run import run
from audiostyle.sweep._study import JOURNAL, artifact_store, journal_storage

__all__ = ["JOURNAL", "Budget", "Choice", "Float", "Given", "Int", "Objective", "PARETO_OBJECTIVES", "Plan", "Space",
           "SweepResult", "artifact_store", "journal_storage", "load_data", "main", "prepare_data", "run"]
