"""Objective metrics shared by every method, in a fixed feature space that no method's parameters change.

Module map (private modules, one job each; import from here):

``_names``         metric names, their directions (:data:`METRIC_DIRECTIONS`), :data:`COMMON_METRICS`, :data:`HEADLINE`
``_objectives``    :class:`Objective` (a name and its better direction), the headline and Pareto objectives
``_features``      one STFT at 22.05 kHz → log-mel, MFCC, chroma, onset envelope, flatness; the input-clip cache
``_melody``        pitch accuracy (pYIN, 50 cents), chroma similarity, onset F1 (mir_eval, 50 ms)
``_timbre``        clip timbre statistics and the Gaussian timbre model fitted on the train split
``_classifier``    the domain classifier of that model, with per-domain acceptance ("none of them"); the graded shift
``_paired``        the distance to the true target (log-mel LSD, loudness-normalised)
``_distribution``  the Fréchet distance of frame statistics (``fad``)
``_reference``     :class:`Reference`: everything fitted on the dataset's train split, cached by content hash
``_evaluate``      :func:`evaluate` (every column at once) and :func:`headline`

The columns (direction: better is):

``pitch_acc`` (max, [0, 1])
    Raw pitch accuracy: the fraction of the content's voiced frames (pYIN, C2–C7) where the output's f0 is within
    50 cents; octave errors and unvoiced output frames are misses. NaN for unpitched content.
``chroma_sim`` (max, [-1, 1])
    Mean cosine of the mean-removed chroma of output and content over the content's active frames (chords).
``onset_f1`` (max, [0, 1])
    ``mir_eval.onset.f_measure`` of the output's onsets against the content's, 50 ms window.
``melody`` (max, [0, 1])
    ``pitch_acc``, or ``max(chroma_sim, 0)`` for content without a pitch track (why, and why ``onset_f1`` is
    reported but not counted: :func:`melody_metrics`). On paired data the four melody columns are taken against the
    content or its true target, whichever gives the higher ``melody`` (the pitch tracker hears instruments
    differently).
``timbre_dist`` (min, >= 0)
    Mahalanobis distance of the output's timbre statistics to the target domain's train clips (shared
    within-instrument covariance, every direction of the statistics), in units of the distance of an unseen clip of
    a domain to its own centre (so about 1 for a real clip of the target instrument).
``target_prob`` (max, [0, 1])
    The domain classifier's probability of the target domain: a Gaussian classifier on those distances with a
    per-domain acceptance radius in both views measured on the dataset's unseen clips, so it is low on noise, silence
    and anything far from every domain.
``timbre_shift`` (max, [0, 1])
    How far the output's timbre moved from its content clip's towards the target domain
    (:func:`audiostyle.metrics._classifier.timbre_shift`): the fraction of the content's discriminant-view distance
    to the target domain that the output covered (down to a typical unseen target clip's; clipped to [0, 1]), times
    a logistic of its full-view distance around the domain's acceptance radius (slope: the std of the unseen clips'
    distances), so 0 for copying the content, about 1 for a target clip, low for content plus noise (which the
    discriminant view may project next to a bowed string, the full view not), and continuous in between.
``lsd_db`` (min, dB)
    Log-mel spectral distance to the true target after matching loudness, both spectra floored 40 dB below the
    target frame's loudest band (:data:`~audiostyle.metrics._paired.LSD_MASK_DB`: content + noise is never closer
    than the content); NaN when no output has a true target.
``lsd_rel`` (min, >= 0)
    ``lsd_db`` over what copying the content scores on it (per output, :func:`relative_distance`): 1 for the
    content, 0 for the target; the figure that compares across instrument pairs and datasets.
``fad`` (min, >= 0)
    Fréchet distance between the outputs' pooled frames (MFCC 1–12 and their deltas) and the target domain's train
    frames.
``silence_kept`` (min, dB <= 0)
    The output's level (dB re its loudest frame) over the frames where the content is silent (more than 60 dB
    below its loudest: pauses, release tails, padding; :func:`silence_level`), mean over the outputs whose content
    has such frames, else NaN: an output that turns silence into a drone or hiss reads high. The headline sees it
    through ``lsd_rel`` on paired data (the target is silent there too); this column names it.
``paired_frac`` (diagnostic)
    Fraction of the outputs that had a true target (``lsd_db`` is their mean; a batch is never NaN-ed by a few).
``transfer_score`` (max, [0, 1], :data:`HEADLINE`)
    The geometric mean of the headline's components (:func:`headline_parts`): ``melody``; ``timbre =
    (timbre_shift + TIMBRE_PRIOR) / (1 + TIMBRE_PRIOR)`` (moved towards the target instrument); and on paired data
    ``target = exp(-lsd_rel²)``: copying the content keeps ``exp(-1)`` of it in every direction, so neighbouring
    instruments (violin → cello, whose copy-content LSD is half a distant pair's) ask proportionally more of an
    output; a Gaussian in units of the content's own distance, so an output that moved halfway keeps ``exp(-1/4)``
    and one farther from the target than the content (content + noise at 30 dB: ``lsd_rel`` about 1.5) keeps about
    0.1.

Which headline, and why. On paired data the true target exists, and the distance to it is the only measure that a
degenerate output cannot approach from one side: copying the content keeps the melody perfectly, copying a style
clip has the timbre perfectly, but both are far from the target. Melody and timbre stay in the product because
LSD alone forgives an output that is near the target spectrally but loses the notes (reversal keeps the spectrum's
statistics), and because they are what the user asked for. On unpaired data there is no target: melody (kept from
the content) and timbre (moved to the target domain) are the whole definition of a transfer, so the headline is
``sqrt(melody · timbre)``. The timbre term is measured from the content clip, not as an absolute closeness to the
target domain: a kernel of ``timbre_dist`` gives copying the content of a neighbouring instrument (flute → violin)
half the credit of a true transfer, while ``timbre_shift`` gives copying any content 0. It is graded rather than the
classifier's ``target_prob``, whose acceptance is a step: an output that moved halfway (a trained network early in
its training, an equaliser) scored the same 0 as one that did nothing, and a sweep had no gradient to follow. Its
additive prior (:data:`TIMBRE_PRIOR`, 0.05) keeps outputs that did not move ranked by their other components and
bounds the term's slope: copying the content scores 0.26 on paired data (0.22 unpaired), an output halfway to the
target about 0.73, and an output that moved a little in timbre while losing melody or distance scores below copying.
A geometric mean is high only when every component is; a degenerate output fails at least one, which is what
``python -m audiostyle.calibrate`` checks (its ``DEGENERATE_THRESHOLD`` is 0.5).
No constant of the headline is fitted to a dataset by hand: the timbre distance unit and the acceptance radii are
measured on each dataset's train split when its reference is built, and the target term's unit is the content's
own distance to its target. A reference may borrow another dataset's timbre space (``build_reference(dataset,
space_from=other)``: the whitening, spreads and radii of another recording source's fit, in which ``dataset``'s own
train clips locate its instruments); across sample libraries that space holds while the instruments' locations do
not (``benchmarks/results/calibration_across_sources.md``).

Leakage: the embedding, the classifier, the ``fad`` statistics and every scale are fitted on the train split
only (:data:`TRAIN_SPLIT`); methods score val melodies while sweeping and test melodies for final numbers.
Everything that depends only on the inputs (content pitch and onsets, target spectra) is computed once per
process (:func:`cached_features`); nothing here downloads anything.
"""

from audiostyle.metrics._classifier import (
    REJECT_SIGMAS,
    SHIFT_MIN_SPAN,
    acceptance,
    acceptance_radius,
    domain_probabilities,
    timbre_shift,
)
from audiostyle.metrics._distribution import FAD_SHRINKAGE, CovMode, frechet_distance
from audiostyle.metrics._evaluate import (
    SCORE_VERSION,
    TIMBRE_PRIOR,
    evaluate,
    headline,
    headline_parts,
    silence_level,
    target_probability,
)
from audiostyle.metrics._features import METRIC_SR, TOP_DB, Audio, ClipFeatures, cached_features, clip_features
from audiostyle.metrics._melody import (
    CENT_TOLERANCE,
    ONSET_WINDOW_S,
    chroma_similarity,
    melody_metrics,
    onset_f1,
    pitch_accuracy,
    pitch_track,
)
from audiostyle.metrics._names import (
    COMMON_METRICS,
    DIAGNOSTICS,
    HEADLINE,
    MELODY_METRICS,
    METRIC_DIRECTIONS,
    PARETO,
    Direction,
)
from audiostyle.metrics._objectives import (
    COMMON_OBJECTIVES,
    HEADLINE_OBJECTIVE,
    PARETO_OBJECTIVES,
    Objective,
    objective,
    parse_objectives,
)
from audiostyle.metrics._paired import log_mel_distance, relative_distance
from audiostyle.metrics._reference import (
    REFERENCE_VERSION, TRAIN_SPLIT, VOCODER_ITERS, VOCODERS, Reference, build_reference, dataset_hash,
)
from audiostyle.metrics._timbre import TimbreSpace, clip_stats, timbre_stats

__all__ = [  # the package face: every name imported above from the private modules
    "Audio", "CENT_TOLERANCE", "COMMON_METRICS", "COMMON_OBJECTIVES", "ClipFeatures", "CovMode", "DIAGNOSTICS",
    "Direction", "FAD_SHRINKAGE", "HEADLINE", "HEADLINE_OBJECTIVE", "MELODY_METRICS", "METRIC_DIRECTIONS",
    "METRIC_SR", "ONSET_WINDOW_S", "Objective", "PARETO", "PARETO_OBJECTIVES", "REFERENCE_VERSION", "REJECT_SIGMAS",
    "Reference", "SCORE_VERSION", "SHIFT_MIN_SPAN", "TIMBRE_PRIOR", "TOP_DB", "TRAIN_SPLIT", "TimbreSpace", "VOCODERS",
    "VOCODER_ITERS", "acceptance",
    "acceptance_radius", "build_reference", "cached_features", "chroma_similarity", "clip_features", "clip_stats",
    "dataset_hash", "domain_probabilities", "evaluate", "frechet_distance", "headline", "headline_parts",
    "log_mel_distance", "melody_metrics", "objective", "onset_f1", "parse_objectives", "pitch_accuracy",
    "pitch_track", "relative_distance", "silence_level", "target_probability", "timbre_shift", "timbre_stats",
]
