"""The keys of a trial's results (what the trial reports to Ray Tune and what the driver reads back).

Defined once, like ``ray.tune.result``: the trial (:mod:`._trial`) writes them, the searcher, the schedulers, the
store callback, the monitor and the reporter read them.

``step``                 the method's step counter (ASHA/PBT's time attribute)
``metrics``              the metrics exactly as reported (a nested dict; the store's history)
``tracked.<metric>``     the latest value of each objective metric reported so far, carried forward
                         between reports that lack it (NaN before the first): what the schedulers and the
                         searcher read, so every result carries them
``trial.device``         ``cpu`` or ``cuda:N``
``trial.artifacts``      JSON ``{relative name: URI}`` of the artifacts uploaded to the store so far
``trial.final``          True on the one result a trial ends with (its final metrics)
``trial.status``         on the final result: ``finished`` or ``failed``
``trial.error``          on the final result: the failure's reason (empty when finished)
``trial.restored_from``  the trial whose checkpoint this one continues (itself after a restore; the donor
                         after a PBT exploit); absent when the trial started afresh

A report with state carries a Tune checkpoint folder of :data:`CHECKPOINT_FILE` (the state, ``torch.save``)
and :data:`TRIAL_FILE` (step, tracked values and the reports so far).
"""

STEP = "step"
METRICS = "metrics"
TRACKED = "tracked."
DEVICE = "trial.device"
ARTIFACTS = "trial.artifacts"
FINAL = "trial.final"
STATUS = "trial.status"
ERROR = "trial.error"
RESTORED_FROM = "trial.restored_from"
TIME_TOTAL = "time_total_s"
"""Ray Tune's running time of a trial, summed over restores."""
TRAIN_SECONDS = "trial.train_s"
"""Seconds a trial has spent in its method (training and evaluation), summed over restores; what Ray Tune's
``time_total_s`` adds (a fresh process, imports, kernel loading, restoring) left out. The clock of ``--trial-budget``
and of rungs in seconds, so that a trial restored in a new process is not charged its start-up again."""
TIME_THIS_ITER = "time_this_iter_s"
RAY_TRIAL_ID = "ray_trial_id"
"""The user attribute of a sweep's Optuna trial naming its Ray trial (the store row's ``trial_id``)."""
CHECKPOINT_FILE = "checkpoint.pt"
TRIAL_FILE = "trial.json"
STEP_SECONDS = "step_s"
"""Metric the trial adds to each report: wall seconds per step since its process started it (evaluation
included), what a config costs; the store row's ``metric.step_s`` and the console line show the last one."""
LEARNING_CURVES = "learning_curves.png"
"""The trial's learning-curve figure in its artifact folder (losses and the headline's parts against step),
shown beside its spectrogram figure in the dashboard."""


def tracked(metric: str) -> str:
    """The result key carrying ``metric``'s latest value (``tracked.<metric>``)."""
    return TRACKED + metric
