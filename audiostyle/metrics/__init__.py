"""Objective metrics shared by every method, in a fixed feature space that no method's parameters change.

Module map (private modules, one job each; import from here):

``_names``         metric names, their directions (:data:`METRIC_DIRECTIONS`), :data:`COMMON_METRICS`, :data:`HEADLINE`
``_objectives``    :class:`Objective` (a name and its better direction), the headline and Pareto objectives
``_features``      one STFT at 22.05 kHz → log-mel, MFCC, chroma, onset envelope, flatness; the input-clip cache
``_melody``        pitch accuracy (pYIN, 50 cents), chroma similarity, onset F1 (mir_eval, 50 ms)
``_timbre``        clip timbre statistics and the discriminant timbre embedding fitted on the train split
``_classifier``    the domain classifier on that embedding, with a reject class
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
    Mean of ``pitch_acc``, ``max(chroma_sim, 0)`` and ``onset_f1``.
``timbre_dist`` (min, >= 0)
    Distance of the output to the target domain's train clips in the timbre embedding, in units of the distance
    of an unseen clip of a domain to its own centre (so about 1 for a real clip of the target instrument).
``target_prob`` (max, [0, 1])
    The domain classifier's probability of the target domain; a reject class keeps it low on noise, silence and
    anything far from every domain.
``lsd_db`` (min, dB)
    Log-mel spectral distance to the true target after matching loudness; NaN when no output has a true target.
``fad`` (min, >= 0)
    Fréchet distance between the outputs' pooled frame MFCC 1–19 and the target domain's train frames.
``paired_frac`` (diagnostic)
    Fraction of the outputs that had a true target (``lsd_db`` is their mean; a batch is never NaN-ed by a few).
``transfer_score`` (max, [0, 1], :data:`HEADLINE`)
    The geometric mean of the headline's components (:func:`headline_parts`):
    ``melody``; ``timbre = exp(-timbre_dist² / (2 · 2²))``; and on paired data ``target = exp(-lsd_db / 5 dB)``.

Which headline, and why. On paired data the true target exists, and the distance to it is the only measure that a
degenerate output cannot approach from one side: copying the content keeps the melody perfectly, copying a style
clip has the timbre perfectly, but both are far from the target. Melody and timbre stay in the product because
LSD alone forgives an output that is near the target spectrally but loses the notes (reversal keeps the spectrum's
statistics), and because they are what the user asked for. On unpaired data there is no target: melody (kept from
the content) and timbre (moved to the target domain) are the whole definition of a transfer, so the headline is
``sqrt(melody · timbre)``. A geometric mean is high only when every component is; a degenerate output fails at
least one, which is what ``python -m audiostyle.calibrate`` checks (its ``DEGENERATE_THRESHOLD`` is 0.5).

Leakage: the embedding, the classifier, the ``fad`` statistics and every scale are fitted on the train split
only (:data:`TRAIN_SPLIT`); methods score val melodies while sweeping and test melodies for final numbers.
Everything that depends only on the inputs (content pitch and onsets, target spectra) is computed once per
process (:func:`cached_features`); nothing here downloads anything.
"""

from audiostyle.metrics._classifier import REJECT_RADIUS, domain_probabilities
from audiostyle.metrics._distribution import FAD_SHRINKAGE, CovMode, frechet_distance
from audiostyle.metrics._evaluate import (
    LSD_SCALE_DB,
    TIMBRE_WIDTH,
    evaluate,
    headline,
    headline_parts,
    target_probability,
)
from audiostyle.metrics._features import METRIC_SR, Audio, ClipFeatures, cached_features, clip_features
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
from audiostyle.metrics._paired import log_mel_distance
from audiostyle.metrics._reference import REFERENCE_VERSION, TRAIN_SPLIT, Reference, build_reference, dataset_hash
from audiostyle.metrics._timbre import TimbreSpace, timbre_stats
