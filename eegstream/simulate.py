"""Realistic simulated Emotiv recordings with blink / jaw-clench markers.

Training data and tests need recordings with exact ground truth and a lot of variety, so each
simulated *subject* draws its own physiology (background spectrum, alpha rhythm, electrode offsets,
blink and clench habits) and each *event* draws its own amplitude, duration and shape, all from the
documented ranges in :class:`SimulationRanges`. The signal is the sum of

- a spatially correlated 1/f^beta background with a white amplifier / contact-noise floor
  (subjects differ by more than a decade, electrodes with poor contact are noisier),
- tonic EMG: the resting muscle tone of the temples, forehead and neck, slowly waxing and
  waning, more than a decade apart in power between relaxed and tense subjects,
- a waxing and waning posterior alpha rhythm,
- per-electrode DC offsets near 4,200 uV (Emotiv raw data is not high-passed), slow drift,
- mains interference at 50 or 60 Hz,
- labelled artifacts: blinks (marker 22; some subjects also force large blinks, F7/F8
  dominant) and jaw clenches (marker 23, always well above the subject's own tonic EMG),
- unlabelled confounders: saccades (modest to gaze shifts of hundreds of uV at F7/F8), tongue
  movements (slow glossokinetic potentials led by the temples), electrode pops, brief signal
  loss, talking/swallowing EMG, eyebrow raises (frontalis EMG with the headset shifting on the
  head) and large head/cable movement deflections,

then quantised to the headset's LSB and clipped to its 14-bit ADC range, so the largest
deflections saturate with flat tops as on a real EPOC+. Everything is vectorised numpy: an hour at
128 Hz takes a few seconds. Same arguments, same seed -> bit-identical :class:`~eegstream.io.recording.Recording`.

The bundled demo recording is regenerated with::

    eegstream simulate eegstream/data/demo.csv.gz --duration 180 --seed 2026
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.signal import lfilter

from eegstream.errors import EegstreamError
from eegstream.io.recording import Marker, Recording
from eegstream.settings import BASELINE_S, DEFAULT_MARKER_LABELS, ELECTRODES

log = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Span = tuple[float, float]

BLINK_MARKER = 22
CLENCH_MARKER = 23
#: Sampling rates the simulator generates natively (Emotiv EPOC: 128 Hz, or 256 Hz on EPOC X/Flex).
SUPPORTED_FS = (128, 256)
#: Seconds of the demo recording and its seed; ``tests/test_simulate.py`` checks the file matches.
DEMO_DURATION_S = 180.0
DEMO_SEED = 2026
#: EmotivPRO's ``headset type`` code of each headset name.
_HEADSET_TYPES = {"EPOC X": "EPOCX", "EPOC+": "EPOCPLUS"}
DEMO_FILE = Path(__file__).resolve().parent / "data" / "demo.csv.gz"


@dataclass(frozen=True)
class SimulationRanges:
    """Ranges every simulated parameter is drawn from, with the physiology behind them.

    Subject-level ranges are drawn once per subject (``subject_variability`` scales how far the
    draw strays from the middle of the range); event-level ranges bound each event's draw around
    its subject's own typical value (log-normal spread ``*_event_sd``). Amplitudes are in uV as
    seen by an Emotiv EPOC/EPOC X (CMS/DRL reference at P3/P4, saline sensors).

    Sources: typical scalp EEG 10-50 uV with a 1/f^beta spectrum, beta ~1-2 (He 2014, Trends
    Cogn Sci; Donoghue et al. 2020, Nat Neurosci); posterior alpha 8-12 Hz with individual alpha
    frequency ~8.5-11.5 Hz (Klimesch 1999); blinks 200-400 ms, 50-250 uV at Fp/AF falling off
    with distance from the eyes (Iwasaki et al. 2005, Clin Neurophysiol; Croft & Barry 2000);
    spontaneous blink rate 10-20/min (Doughty 2001); jaw-clench (masseter/temporalis) EMG is
    broadband 20-150 Hz, strongest at temporal sites T7/T8 (Goncharova et al. 2003, Clin
    Neurophysiol); horizontal EOG from saccades appears as opposite-polarity steps at F7/F8;
    Emotiv EPOC raw data carry a ~4,200 uV DC offset and a 14-bit resolution of 0.51 uV per LSB
    (EMOTIV EPOC+/EPOC X specifications).
    """

    # --- background (subject level) ---
    background_rms_uv: Span = (5.0, 12.0)  #: broadband 1/f background rms per channel
    background_exponent: Span = (1.0, 2.0)  #: beta in power ~ 1/f^beta
    spatial_length: Span = (0.35, 0.7)  #: correlation length (unit-sphere chord) of neighbours
    channel_gain: Span = (0.8, 1.25)  #: per-electrode contact/impedance gain on the background
    # White floor: amplifier noise plus electrode-skin contact noise, drawn log-uniformly (25x
    # in rms, 625x in power, between subjects), as its rms over 0-64 Hz (128 Hz sampling); at
    # 256 Hz the same density, so sqrt(2) more rms. The EPOC+ keeps 14 of its ADC's 16 bits
    # because the 2 lowest are instrumental noise (EMOTIV specifications): ~0.2 uV is a good
    # contact's floor; drying or displaced saline sensors add several uV of contact noise. On
    # the real EPOC+ user (museeg-epocplus-trainbatch1, neutral epochs) the quietest electrodes
    # hold 0.1-0.17 uV^2/Hz at 20-45 Hz, i.e. a floor of at most ~2.5-3 uV at 128 Hz.
    noise_floor_uv: Span = (0.2, 5.0)  #: subject's white floor rms (log-uniform)
    poor_contact_share: Span = (0.0, 0.3)  #: share of a subject's electrodes with poor contact
    poor_contact_noise: Span = (2.0, 4.0)  #: their floor / the subject's floor (log-uniform)
    contact_noise: Span = (0.8, 1.25)  #: the other electrodes' floor / the subject's floor
    alpha_freq_hz: Span = (8.5, 11.5)  #: individual alpha frequency
    alpha_bandwidth_hz: Span = (0.8, 2.0)  #: alpha peak full width at half maximum
    alpha_rms_uv: Span = (3.0, 15.0)  #: alpha rms at O1/O2
    alpha_modulation: Span = (0.2, 0.7)  #: log-amplitude depth of alpha waxing and waning
    dc_offset_uv: Span = (4100.0, 4300.0)  #: per-electrode DC offset (Emotiv raw)
    drift_rms_uv: Span = (3.0, 25.0)  #: slow drift (electrode polarisation, sweat) rms
    drift_tau_s: Span = (10.0, 60.0)  #: drift time constant (corner 0.003-0.016 Hz)
    mains_hz: tuple[float, ...] = (50.0, 60.0)  #: mains frequency, one per subject
    mains_uv: Span = (0.2, 3.0)  #: residual mains amplitude after Emotiv's notch filters

    # --- tonic EMG (subject level) ---
    # Resting muscle tone of temporalis (T7/T8, FC5/FC6, F7/F8), frontalis (AF3/AF4, F7/F8)
    # and neck muscles (O1/O2, P7/P8): broadband 20-60 Hz like a clench's EMG, always present,
    # slowly waxing and waning with posture and tension (Goncharova et al. 2003). Calibrated on
    # the real EPOC+ user (museeg-epocplus-trainbatch1, 127 neutral 1.5 s epochs at 256 Hz,
    # Welch 0.5 s): resting 20-45 Hz PSD at T7/T8 is 2.6 uV^2/Hz (epochs' 10-90 %: 2.0-3.2),
    # 16x the simulator's median subject without tonic EMG (0.17 uV^2/Hz over seeds 0-19, from
    # the 1/f background; 0.04-0.72 between subjects). A tonic rms of ~9 uV at T7/T8 gives the
    # real user's level, so the range tops out above it; its bottom is a fully relaxed jaw,
    # whose EMG hides under the background. Relative electrode gains from the same epochs.
    tonic_emg_uv: Span = (0.4, 12.0)  #: 20-60 Hz rms at T7/T8 (log-uniform: 900x in power)
    tonic_asymmetry: Span = (-0.25, 0.25)  #: left/right imbalance (+ = left larger)
    tonic_modulation: Span = (0.15, 0.5)  #: log-amplitude depth of the slow waxing and waning
    tonic_modulation_hz: float = 0.05  #: bandwidth of that modulation (tens of seconds)

    # --- blinks ---
    blink_rate_per_min: float = 12.0  #: default rate (dense on purpose: training data)
    blink_duration_s: Span = (0.2, 0.45)  #: whole deflection
    blink_duration_event_sd: float = 0.12
    blink_rise_fraction: Span = (0.3, 0.5)  #: rise time / duration (lid closes faster)
    blink_amplitude_uv: Span = (50.0, 250.0)  #: peak at AF3/AF4
    blink_amplitude_event_sd: float = 0.25
    blink_asymmetry: Span = (-0.15, 0.15)  #: left/right gain imbalance (+ = left larger)
    double_blink_probability: Span = (0.02, 0.12)
    double_blink_gap_s: Span = (0.05, 0.2)  #: end of the first to start of the second
    double_blink_second_ratio: Span = (0.6, 1.0)  #: second amplitude / first
    # Forced (voluntary, squeezed) blinks: unlike a spontaneous blink's vertical EOG (largest at
    # AF3/AF4), the squeeze of orbicularis oculi, the upward eye roll (Bell's phenomenon) and
    # the skin pushed under the sensor arms give a slow field peaking at the outer canthi, under
    # F7/F8, 20-40x a spontaneous blink's there. Measured on the real EPOC+ user
    # (museeg-epocplus-trainbatch1, 88 hardblink epochs): peak above the pre-blink level
    # 1,300-3,200 uV at F7 (10-90 %), 2,100-3,500 at F8, where the ADC saturates (flat tops
    # near one level) in ~60 % of them; AF3 135-565 uV; F7/AF3 6.3x and F8/AF3 8.6x (medians);
    # relative to F7/F8: FC5/FC6 0.15, AF3/AF4 0.12, F3/F4 0.06, T7/T8 0.03, P/O <= 0.02; over
    # half-peak for 0.17-0.32 s; then an undershoot of 0.2-0.5x the peak recovering over
    # seconds: the EPOC+ front end is AC coupled at 0.16 Hz (EMOTIV specifications), and that
    # first-order high-pass applied to the blink reproduces both the undershoot and the sag of
    # unsaturated plateaus (the other parts are specified as recorded: only a forced blink is
    # long and large enough for the coupling to matter). Most people never force a blink in a
    # session; some do it often (the real user on request): forcing subjects are a minority.
    forced_blinker_share: float = 0.3  #: share of subjects who force blinks at all
    forced_blink_probability: Span = (0.05, 0.4)  #: share of a forcer's blinks that are forced
    forced_blink_uv: Span = (500.0, 5000.0)  #: peak at F7/F8 before the AC coupling
    forced_blink_event_sd: float = 0.3
    forced_blink_duration_s: Span = (0.3, 0.6)  #: the whole positive deflection
    forced_blink_ramp: Span = (0.2, 0.35)  #: rise and fall, each as a share of the duration

    # --- jaw clenches ---
    clench_rate_per_min: float = 6.0  #: default rate
    clench_duration_s: Span = (0.3, 2.0)
    clench_duration_event_sd: float = 0.35
    clench_rms_uv: Span = (20.0, 150.0)  #: EMG rms at T7/T8 on the plateau
    clench_rms_event_sd: float = 0.3
    # A clench must stand out from the subject's own tonic EMG: every clench's plateau rms is
    # at least 3x (9x in power) the tonic rms, the subject's typical clench at least 6x. For
    # scale: biting the lower lip, a weaker contraction than a clench, raises the real EPOC+
    # user's 20-45 Hz power at T7/T8 6x over rest (2.5x in rms) from an already high tonic.
    clench_min_over_tonic: float = 3.0  #: floor of each clench's rms / the tonic rms
    clench_typical_over_tonic: float = 6.0  #: floor of the subject's typical clench / tonic
    clench_ramp_s: Span = (0.05, 0.2)  #: onset and release ramps
    emg_low_hz: Span = (15.0, 25.0)  #: lower edge of the EMG band
    emg_high_hz: Span = (45.0, 60.0)  #: upper edge (kept under the 64 Hz Nyquist of 128 Hz)
    clench_asymmetry: Span = (-0.25, 0.25)  #: left/right chewing-side imbalance

    # --- schedule ---
    min_gap_s: float = 0.8  #: from the end of one artifact to the next onset
    end_margin_s: float = 0.5  #: artifacts end this long before the recording does

    # --- unlabelled confounders (rarer than the artifacts) ---
    # Saccades: the cornea is positive against the retina (a standing dipole of ~0.4-1 mV), so
    # a horizontal gaze shift swings the field at the outer canthi: ~15-20 uV per degree across the canthi (bipolar), ~10 uV per
    # degree at each of F7/F8, which sit just above and behind them, opposite in polarity on
    # the two sides; FC5/FC6 and T7/T8 see less, AF3/AF4 and F3/F4 little (they lie over the
    # eyes, near the horizontal dipoles' null plane). Most everyday saccades are under 15
    # degrees; gaze shifts of 30-50 degrees (looking aside at something) are the large ones.
    # Their duration grows with size (main sequence: ~21 ms + 2.2 ms per degree, Carpenter
    # 1988). Gaze shifts are seldom purely horizontal: a vertical part of either sign adds a
    # step in the vertical-EOG (blink) field, largest at AF3/AF4. Calibrated on the real EPOC+
    # user's training epochs (museeg-epocplus-trainbatch1, file index n % 3 != 2: 65 lookleft,
    # 72 lookright, 85 neutral; 0.5-8 Hz band-pass, peak-to-peak in the 1.5 s epoch): lookleft
    # F7 368-518 uV, F8 371-530 (10-90 %), lookright F7 275-394, F8 214-438, against neutral
    # F7 33-183, F8 41-196; F7-F8 correlation -0.64 (lookleft) and -0.48 (lookright, medians);
    # regressed on (F7 - F8) / 2 the other electrodes carry FC5 +0.32, FC6 -0.47, T8 -0.37,
    # T7 +0.08, AF3/AF4 and F3/F4 |<= 0.2|, P/O |<= 0.25|; AF3 nevertheless 132-254 uV (neutral
    # 33-134), a part uncorrelated with F7 - F8: the vertical component. The user looked far
    # (~40-50 degrees at ~10 uV per degree); the range reaches past them, the typical subject
    # makes modest ones.
    saccade_rate_per_min: float = 3.0  #: go-and-return horizontal eye movements
    saccade_uv: Span = (15.0, 650.0)  #: step at F7/F8 (opposite polarity), each event
    saccade_typical_uv: Span = (25.0, 350.0)  #: a subject's typical step (log-uniform)
    saccade_event_sd: float = 0.6  #: log-normal spread of the events around it
    saccade_uv_per_degree: float = 10.0  #: horizontal EOG at F7/F8 per degree of gaze shift
    saccade_duration_s: Span = (0.03, 0.15)  #: each eye movement (main sequence, clipped)
    saccade_vertical: Span = (-0.4, 0.4)  #: vertical step at AF3/AF4 / horizontal at F7/F8
    fixation_s: Span = (0.3, 1.5)  #: time looking aside before returning
    pop_rate_per_min: float = 0.4  #: electrode pops (one channel)
    pop_uv: Span = (50.0, 400.0)
    pop_tau_s: Span = (0.1, 0.6)  #: exponential recovery
    dropout_rate_per_min: float = 0.3  #: lost packets EmotivPRO interpolates
    dropout_samples: Span = (2.0, 12.0)
    talk_rate_per_min: float = 1.0  #: talking / swallowing EMG, weaker and shorter than clenches
    talk_rms_uv: Span = (4.0, 15.0)
    talk_duration_s: Span = (0.1, 0.3)
    confounder_margin_s: float = 0.25  #: confounders keep this far from labelled artifacts
    # Tongue movements (glossokinetic potentials): the tongue is a dipole, tip negative against
    # its root, and moving it (pressing the palate or a cheek, licking the lips) gives slow
    # (~1-2 Hz) deflections of the same polarity on both sides, largest at the lateral,
    # inferior-frontal and temporal sites nearest the tongue and mouth (F7/F8, FC5/FC6, T7/T8),
    # smaller over the forehead (AF3/AF4) and little posteriorly (Vanhatalo et al. 2003,
    # NeuroImage: topography of slow responses to tongue movements). Unlike
    # a blink's 0.2-0.45 s pulse led by AF3/AF4, a tongue movement lasts 0.3-1.2 s and is led
    # by the temples. Calibrated on the real EPOC+ user's training epochs (n % 3 != 2: 52
    # tongue, 85 neutral; 0.5-8 Hz, peak-to-peak per 1.5 s epoch): (F7 + F8) / 2 swings
    # 82-233 uV (10-90 %, 271 at most) against 32-162 at rest; F7-F8 correlation +0.73
    # (median; 10-90 %: 0.29-0.90); excess over rest relative to F7/F8: T7 1.9, T8 0.8 (left
    # dominant in this user; pair mean 1.35), FC5 1.45, FC6 0.71 (1.08), AF3 0.84 (AF4 had
    # poor contact), F3/F4 0.30, O1 0.24, P7 0.11; T7 regresses on (F7 + F8) / 2 at -0.73:
    # the temporal sites may see the field reversed; spectral centroid of the swing 1.1-2.1 Hz,
    # several lobes (3-7 zero crossings per epoch) rather than one pulse.
    tongue_rate_per_min: float = 1.0  #: tongue movements (unlabelled)
    tongue_uv: Span = (50.0, 300.0)  #: peak-to-peak at F7/F8
    tongue_event_sd: float = 0.3
    tongue_duration_s: Span = (0.3, 1.2)  #: the whole movement
    tongue_lobe_s: Span = (0.25, 0.45)  #: one push of the tongue (half a cycle at 1.1-2 Hz)
    tongue_asymmetry: Span = (-0.4, 0.4)  #: per event: the side the tongue pushes (+ = left)
    tongue_temporal_reversed: float = 0.5  #: share of subjects whose T7/T8 see it reversed

    # --- eyebrow raises and movement (unlabelled; calibrated on a real EPOC+ recording) ---
    # Measured on ``shared/fixtures/emotivpro-2.0-epocplus-256hz-eyebrows.csv`` (EmotivPRO 2.0,
    # EPOC+, 7 raises in 36 s, resampled to 128 Hz; statistics only, never a training input):
    # 20-60 Hz EMG rms rises from ~7 to 48 uV at AF3, 41 at F7, 32 at AF4, 22 at FC5, 19 at F8,
    # 16 at T7, 15 at FC6, <= 9 elsewhere (above rest: 6.3x AF3, 5.4x F7, 4.3x AF4, <= 2.7x
    # elsewhere); the burst lasts 0.25-0.5 s; each raise also shifts the headset: a biphasic
    # slow deflection (fast swing peaking ~0.2-0.3 s after the EMG onset, then an opposite,
    # slower overshoot recovering over 1-2 s) of 1,000-3,700 uV peak-to-peak at F7/FC5/T7/AF3,
    # 200-1,500 uV at T8/AF4/F8/F3, ~100-300 uV posterior; strongly lateral (left 3-10x right)
    # with a polarity that differs between electrodes but repeats from raise to raise.
    # Physiology: frontalis EMG is broadband 20-150 Hz over the forehead (Goncharova et al. 2003)
    # and voluntary raises last 0.3-3 s; a blink has no EMG and a symmetric monophasic frontal
    # field, a clench's EMG peaks at T7/T8 -- the cues that keep the classes apart.
    brow_rate_per_min: float = 1.5  #: eyebrow raises (training data: often enough to learn them)
    brow_duration_s: Span = (0.25, 2.0)  #: the EMG burst
    brow_emg_uv: Span = (8.0, 60.0)  #: 20-60 Hz EMG rms at AF3/AF4 on the plateau
    brow_emg_event_sd: float = 0.3
    brow_asymmetry: Span = (-0.4, 0.4)  #: left/right imbalance of the frontalis EMG
    brow_move_probability: Span = (0.4, 1.0)  #: share of raises that shift the headset
    brow_move_uv: Span = (30.0, 3000.0)  #: peak deflection at the most affected electrode
    brow_move_event_sd: float = 0.5
    move_fast_tau_s: Span = (0.08, 0.2)  #: time to peak of the fast swing
    move_slow_tau_s: Span = (0.25, 0.6)  #: time to peak of the slower overshoot
    move_spread: Span = (0.35, 0.9)  #: fall-off (unit-sphere chord) around the moved electrode
    move_other_side: Span = (0.1, 0.5)  #: gain of the far hemisphere relative to the near one
    movement_rate_per_min: float = 0.6  #: head/cable movements without EMG
    movement_uv: Span = (80.0, 2500.0)  #: peak deflection at the most affected electrode

    # --- acquisition ---
    quantum_uv: float = 0.51  #: LSB of the EPOC+/EPOC X in 14-bit mode
    # The 14-bit unsigned codes 0..16383 span 0..8,355.3 uV ("dynamic range (input referred)
    # 8400 uV(pp)", EMOTIV specifications), around the ~4,100-4,200 uV offset: a deflection of
    # ~4,100 uV or more saturates at a rail with a flat top. The real user's forced blinks clip
    # ~3,400 uV above F8's resting level: that electrode rested nearer the top rail.
    adc_codes: int = 2**14  #: codes of the ADC: rails at 0 and (adc_codes - 1) * quantum_uv
    coupling_hz: float = 0.16  #: AC-coupling high-pass of the EPOC+ (0.2 Hz on the EPOC X)
    headsets: tuple[str, ...] = ("EPOC X", "EPOC+")


RANGES = SimulationRanges()


def _gains(table: dict[str, float]) -> F64:
    """Electrode -> gain table as an array in ELECTRODES order (0 where not listed)."""
    return np.array([table.get(e, 0.0) for e in ELECTRODES], dtype=np.float64)


#: Blink field (vertical EOG): strongest near the eyes, AF3/AF4 > F7/F8 > F3/F4 > FC5/FC6 > T7/T8.
BLINK_GAIN = _gains(
    {"AF3": 1.0, "AF4": 1.0, "F7": 0.62, "F8": 0.62, "F3": 0.45, "F4": 0.45, "FC5": 0.22,
     "FC6": 0.22, "T7": 0.07, "T8": 0.07, "P7": 0.015, "P8": 0.015, "O1": 0.008, "O2": 0.008}
)  # fmt: skip
#: Jaw-clench EMG: temporalis/masseter under T7/T8, then FC5/FC6 and F7/F8.
CLENCH_GAIN = _gains(
    {"T7": 1.0, "T8": 1.0, "FC5": 0.6, "FC6": 0.6, "F7": 0.5, "F8": 0.5, "P7": 0.3, "P8": 0.3,
     "F3": 0.2, "F4": 0.2, "AF3": 0.18, "AF4": 0.18, "O1": 0.1, "O2": 0.1}
)  # fmt: skip
#: Talking / swallowing EMG: facial and throat muscles, spatially flatter than a clench.
TALK_GAIN = _gains(
    {"T7": 1.0, "T8": 1.0, "F7": 0.8, "F8": 0.8, "FC5": 0.7, "FC6": 0.7, "AF3": 0.5, "AF4": 0.5,
     "F3": 0.4, "F4": 0.4, "P7": 0.3, "P8": 0.3, "O1": 0.2, "O2": 0.2}
)  # fmt: skip
#: Tonic EMG: temporalis (T7/T8, FC5/FC6, F7/F8), frontalis (AF, F7/F8), neck (O, P). Relative
#: rms from the real EPOC+ user's resting 20-45 Hz PSD (T7 1.05, F7 0.98, F8 0.94, T8 0.95,
#: FC5 0.88, FC6 0.86, AF3 0.81, P8 0.83, O1/O2 0.67, F3 0.63, F4 0.49; AF4 and P7 had poor
#: contact), left and right averaged and sharpened a little towards the temples.
TONIC_GAIN = _gains(
    {"T7": 1.0, "T8": 1.0, "F7": 0.9, "F8": 0.9, "FC5": 0.85, "FC6": 0.85, "AF3": 0.7,
     "AF4": 0.7, "O1": 0.6, "O2": 0.6, "P7": 0.5, "P8": 0.5, "F3": 0.5, "F4": 0.5}
)  # fmt: skip
#: Forced blink: F7/F8 first, 5-8x AF3/AF4 (measured on the real EPOC+ user, see RANGES).
FORCED_BLINK_GAIN = _gains(
    {"F7": 1.0, "F8": 1.0, "FC5": 0.15, "FC6": 0.15, "AF3": 0.13, "AF4": 0.13, "F3": 0.06,
     "F4": 0.06, "T7": 0.03, "T8": 0.03, "P7": 0.015, "P8": 0.015, "O1": 0.015, "O2": 0.015}
)  # fmt: skip
#: Posterior alpha: occipital and parietal, little at the front.
ALPHA_GAIN = _gains(
    {"O1": 1.0, "O2": 1.0, "P7": 0.75, "P8": 0.75, "T7": 0.3, "T8": 0.3, "FC5": 0.2, "FC6": 0.2,
     "F3": 0.15, "F4": 0.15, "F7": 0.15, "F8": 0.15, "AF3": 0.1, "AF4": 0.1}
)  # fmt: skip
#: Horizontal EOG of a leftward saccade: positive on the left (cornea), negative on the right;
#: regression slopes on (F7 - F8) / 2 of the real EPOC+ user's look epochs, sides averaged.
SACCADE_GAIN = _gains(
    {"F7": 1.0, "F8": -1.0, "FC5": 0.4, "FC6": -0.4, "T7": 0.22, "T8": -0.22, "AF3": 0.12,
     "AF4": -0.12, "P7": 0.1, "P8": -0.1, "F3": 0.06, "F4": -0.06, "O1": 0.05, "O2": -0.05}
)  # fmt: skip
#: Tongue movement (glossokinetic field) relative to F7/F8: the same polarity everywhere (T7/T8
#: reversed for some subjects), temples first; the real EPOC+ user's excess over rest, sides
#: averaged (see RANGES).
TONGUE_GAIN = _gains(
    {"T7": 1.3, "T8": 1.3, "FC5": 1.1, "FC6": 1.1, "F7": 1.0, "F8": 1.0, "AF3": 0.7, "AF4": 0.7,
     "F3": 0.3, "F4": 0.3, "O1": 0.2, "O2": 0.2, "P7": 0.12, "P8": 0.12}
)  # fmt: skip

#: Approximate electrode positions (inclination from the vertex, azimuth from the nose, degrees;
#: positive azimuth = left). Right hemisphere mirrors the left.
_POSITIONS_LEFT = {
    "AF3": (74.0, 25.0), "F7": (90.0, 54.0), "F3": (60.0, 40.0), "FC5": (72.0, 69.0),
    "T7": (90.0, 90.0), "P7": (90.0, 126.0), "O1": (90.0, 162.0),
}  # fmt: skip
_MIRROR = {"AF4": "AF3", "F8": "F7", "F4": "F3", "FC6": "FC5", "T8": "T7", "P8": "P7", "O2": "O1"}
_LEFT = np.array([e in _POSITIONS_LEFT for e in ELECTRODES])
#: Frontalis EMG of an eyebrow raise: forehead first (measured excess 20-60 Hz rms on the real
#: EPOC+ recording, left and right averaged, AF = 1), far less at the temples than a clench.
BROW_GAIN = _gains(
    {"AF3": 1.0, "AF4": 1.0, "F7": 0.75, "F8": 0.75, "FC5": 0.42, "FC6": 0.42, "T7": 0.27,
     "T8": 0.27, "F3": 0.13, "F4": 0.13, "P7": 0.12, "P8": 0.12, "O1": 0.09, "O2": 0.09}
)  # fmt: skip
#: Where a headset shift is centred: the sensor arms over the temples and the side of the
#: forehead (F7/FC5/T7 in the real recording), never the midline-frontal blink field.
_MOVE_CENTRES = np.array(
    [ELECTRODES.index(e) for e in ("F7", "F8", "FC5", "FC6", "T7", "T8", "P7", "P8", "O1", "O2")]
)


def _positions() -> F64:
    """Unit-sphere xyz of the 14 electrodes in ELECTRODES order."""
    rows = []
    for e in ELECTRODES:
        inc, az = _POSITIONS_LEFT[_MIRROR.get(e, e)]
        az = az if e in _POSITIONS_LEFT else -az
        t, p = math.radians(inc), math.radians(az)
        rows.append((math.sin(t) * math.sin(p), math.sin(t) * math.cos(p), math.cos(t)))
    return np.array(rows, dtype=np.float64)


_XYZ = _positions()
_DIST = np.linalg.norm(_XYZ[:, None, :] - _XYZ[None, :, :], axis=-1)


@dataclass(frozen=True, eq=False)
class Subject:
    """One simulated subject: every subject-level parameter, drawn from :class:`SimulationRanges`.

    Compared by identity (it holds arrays); compare fields with ``np.array_equal``.
    """

    subject_id: str
    headset: str
    background_rms_uv: float
    background_exponent: float
    spatial_length: float
    channel_gain: F64
    noise_floor_uv: float  #: the subject's white floor rms over 0-64 Hz
    alpha_freq_hz: float
    alpha_bandwidth_hz: float
    alpha_rms_uv: float
    alpha_modulation: float
    dc_offset_uv: F64
    drift_rms_uv: float
    drift_tau_s: float
    mains_hz: float
    mains_uv: F64
    blink_duration_s: float
    blink_amplitude_uv: float
    blink_gain: F64
    double_blink_probability: float
    clench_duration_s: float
    clench_rms_uv: float
    clench_gain: F64
    emg_band_hz: tuple[float, float]
    brow_emg_uv: float
    brow_gain: F64
    brow_move_probability: float
    brow_move_uv: float
    brow_move_gain: F64  #: (2, 14) fast-swing and overshoot gains of this subject's headset shift
    contact_noise: F64  #: (14,) each electrode's floor / noise_floor_uv (poor contact: 2-4x)
    tonic_emg_uv: float  #: tonic EMG rms at T7/T8
    tonic_gain: F64
    tonic_modulation: float
    forced_blink_probability: float  #: share of blinks that are forced (0 for most subjects)
    forced_blink_uv: float  #: typical forced-blink peak at F7/F8 before the AC coupling
    forced_blink_gain: F64
    saccade_uv: float  #: typical horizontal step at F7/F8 of this subject's saccades
    tongue_uv: float  #: typical peak-to-peak at F7/F8 of this subject's tongue movements
    tongue_gain: F64  #: (14,) glossokinetic field, F7/F8 = 1 (T7/T8 negative when reversed)


@dataclass(frozen=True)
class Truth:
    """Ground truth of a simulation: the subject and every event, labelled or not.

    ``confounders`` maps a kind (``saccade``, ``pop``, ``dropout``, ``talk``, ``eyebrow``,
    ``movement``, ``tongue``) to an ``(k, 2)`` array of ``[start_sample, n_samples]``; they carry no marker.
    ``forced_blinks`` holds the onset samples of the blink markers that are forced blinks.
    """

    subject: Subject
    markers: list[Marker]
    confounders: dict[str, I64] = field(default_factory=dict)
    forced_blinks: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


# --- drawing helpers ---------------------------------------------------------------------------


def _draw(rng: np.random.Generator, span: Span, variability: float, size: int | None = None) -> Any:
    """A subject-level draw: uniform over ``span`` at variability 1, its middle at 0."""
    frac = np.clip(0.5 + variability * (rng.random(size) - 0.5), 0.0, 1.0)
    return span[0] + frac * (span[1] - span[0])


def _draw_logu(
    rng: np.random.Generator, span: Span, variability: float, size: int | None = None
) -> Any:
    """A subject-level draw, log-uniform over ``span`` at variability 1, its geometric middle at 0.

    For quantities whose subjects differ by decades (noise floor, tonic EMG): a uniform draw
    would make nearly every subject sit in the top decade.
    """
    frac = np.clip(0.5 + variability * (rng.random(size) - 0.5), 0.0, 1.0)
    if span[0] == span[1]:  # a fixed value (0 included), as tests use to switch a part off
        return span[0] + 0.0 * frac
    return span[0] * (span[1] / span[0]) ** frac


def _draw_log(rng: np.random.Generator, span: Span, variability: float) -> float:
    """A subject's typical value of a log-normally varying event parameter (inner 10-90 % of span)."""
    frac = np.clip(0.5 + variability * (rng.random() - 0.5), 0.0, 1.0) * 0.8 + 0.1
    return float(span[0] * (span[1] / span[0]) ** frac)


def _events(rng: np.random.Generator, typical: float, sd: float, span: Span, n: int) -> F64:
    """Per-event values scattered log-normally around the subject's typical one, kept in span."""
    return np.clip(typical * np.exp(sd * rng.standard_normal(n)), span[0], span[1])


def _ragged(starts: I64, lengths: I64) -> tuple[I64, I64, I64]:
    """Flat sample indices of many segments at once: (index, segment id, offset in segment)."""
    seg = np.repeat(np.arange(len(starts), dtype=np.int64), lengths)
    first = np.cumsum(lengths) - lengths
    offset = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(first, lengths)
    return starts[seg] + offset, seg, offset


def _ramp(offset: I64, length: I64, rise: I64, fall: I64) -> F64:
    """Raised-cosine envelope: 0 -> 1 over ``rise``, plateau, 1 -> 0 over the last ``fall`` samples."""
    o = offset.astype(np.float64)
    up = 0.5 - 0.5 * np.cos(np.pi * np.minimum(o / np.maximum(rise, 1), 1.0))
    down = 0.5 - 0.5 * np.cos(np.pi * np.minimum((length - o) / np.maximum(fall, 1), 1.0))
    return np.asarray(np.minimum(up, down), dtype=np.float64)


def _shaped_noise(rng: np.random.Generator, n: int, k: int, gain: F64) -> F64:
    """``k`` columns of Gaussian noise with amplitude spectrum ``gain(f)``, unit rms each."""
    spec = np.fft.rfft(rng.standard_normal((n, k)), axis=0)
    spec *= gain[:, None]
    out = np.fft.irfft(spec, n=n, axis=0)
    out /= np.maximum(np.sqrt(np.mean(out**2, axis=0)), 1e-12)
    return out


def draw_subject(
    seed: int, subject_variability: float = 1.0, ranges: SimulationRanges = RANGES
) -> Subject:
    """Draw one subject's physiology; depends only on ``seed`` and ``subject_variability``."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    v = subject_variability
    asym_b = float(_draw(rng, ranges.blink_asymmetry, v))
    asym_c = float(_draw(rng, ranges.clench_asymmetry, v))
    side = np.where(_LEFT, 1.0, -1.0)
    # per-electrode field jitter (head shape, sensor placement), small enough to keep the order
    b_jitter = _draw(rng, (0.9, 1.1), v, len(ELECTRODES))
    c_jitter = _draw(rng, (0.9, 1.1), v, len(ELECTRODES))
    # tonic EMG, electrode contact and forced blinks come from a stream of their own, so adding
    # them did not reshuffle the draws above
    more = np.random.default_rng(np.random.SeedSequence([seed, 3]))
    n_ch = len(ELECTRODES)
    tonic = float(_draw_logu(more, ranges.tonic_emg_uv, v))
    tonic_gain = (
        TONIC_GAIN
        * _draw(more, (0.85, 1.15), v, n_ch)
        * (1.0 + float(_draw(more, ranges.tonic_asymmetry, v)) * side)
    )
    tonic_modulation = float(_draw(more, ranges.tonic_modulation, v))
    # poor contact: each electrode with the subject's share (none for the average subject)
    poor = _draw(more, (0.0, 1.0), v, n_ch) > 1.0 - _draw(more, ranges.poor_contact_share, v)
    contact = np.where(
        poor,
        _draw_logu(more, ranges.poor_contact_noise, v, n_ch),
        _draw(more, ranges.contact_noise, v, n_ch),
    )
    # forced blinks: a minority of subjects (not the average one) force a share of their blinks
    forcer = bool(_draw(more, (0.0, 1.0), v) < ranges.forced_blinker_share)
    forced_p = float(_draw(more, ranges.forced_blink_probability, v)) * forcer
    forced_uv = _draw_log(more, ranges.forced_blink_uv, v)
    # saccade and tongue habits, drawn last so the fields above keep their draws
    saccade_uv = float(_draw_logu(more, ranges.saccade_typical_uv, v))
    tongue_uv = _draw_log(more, ranges.tongue_uv, v)
    reversed_t = _draw(more, (0.0, 1.0), v) < ranges.tongue_temporal_reversed
    tongue_gain = TONGUE_GAIN * _draw(more, (0.85, 1.15), v, n_ch)
    tongue_gain[[ELECTRODES.index("T7"), ELECTRODES.index("T8")]] *= -1.0 if reversed_t else 1.0
    return Subject(
        subject_id=f"SIM{seed:05d}",
        headset=ranges.headsets[int(rng.integers(len(ranges.headsets)))],
        background_rms_uv=float(_draw(rng, ranges.background_rms_uv, v)),
        background_exponent=float(_draw(rng, ranges.background_exponent, v)),
        spatial_length=float(_draw(rng, ranges.spatial_length, v)),
        channel_gain=_draw(rng, ranges.channel_gain, v, len(ELECTRODES)),
        noise_floor_uv=float(_draw_logu(rng, ranges.noise_floor_uv, v)),
        alpha_freq_hz=float(_draw(rng, ranges.alpha_freq_hz, v)),
        alpha_bandwidth_hz=float(_draw(rng, ranges.alpha_bandwidth_hz, v)),
        alpha_rms_uv=float(_draw(rng, ranges.alpha_rms_uv, v)),
        alpha_modulation=float(_draw(rng, ranges.alpha_modulation, v)),
        dc_offset_uv=_draw(rng, ranges.dc_offset_uv, v, len(ELECTRODES)),
        drift_rms_uv=float(_draw(rng, ranges.drift_rms_uv, v)),
        drift_tau_s=float(_draw(rng, ranges.drift_tau_s, v)),
        mains_hz=ranges.mains_hz[int(rng.integers(len(ranges.mains_hz)))],
        mains_uv=_draw(rng, ranges.mains_uv, v, len(ELECTRODES)),
        blink_duration_s=_draw_log(rng, ranges.blink_duration_s, v),
        blink_amplitude_uv=_draw_log(rng, ranges.blink_amplitude_uv, v),
        blink_gain=BLINK_GAIN * b_jitter * (1.0 + asym_b * side),
        double_blink_probability=float(_draw(rng, ranges.double_blink_probability, v)),
        clench_duration_s=_draw_log(rng, ranges.clench_duration_s, v),
        clench_rms_uv=max(
            _draw_log(rng, ranges.clench_rms_uv, v), ranges.clench_typical_over_tonic * tonic
        ),
        clench_gain=CLENCH_GAIN * c_jitter * (1.0 + asym_c * side),
        emg_band_hz=(
            float(_draw(rng, ranges.emg_low_hz, v)),
            float(_draw(rng, ranges.emg_high_hz, v)),
        ),
        # drawn last, so the fields above do not depend on them
        brow_emg_uv=_draw_log(rng, ranges.brow_emg_uv, v),
        brow_gain=BROW_GAIN * (1.0 + float(_draw(rng, ranges.brow_asymmetry, v)) * side),
        brow_move_probability=float(_draw(rng, ranges.brow_move_probability, v)),
        brow_move_uv=_draw_log(rng, ranges.brow_move_uv, v),
        brow_move_gain=_move_gains(rng, 1, ranges, v)[0],
        contact_noise=np.asarray(contact, dtype=np.float64),
        tonic_emg_uv=tonic,
        tonic_gain=tonic_gain,
        tonic_modulation=tonic_modulation,
        forced_blink_probability=forced_p,
        forced_blink_uv=forced_uv,
        forced_blink_gain=FORCED_BLINK_GAIN * b_jitter * (1.0 + asym_b * side),
        saccade_uv=saccade_uv,
        tongue_uv=tongue_uv,
        tongue_gain=np.asarray(tongue_gain, dtype=np.float64),
    )


def _move_gains(
    rng: np.random.Generator, k: int, ranges: SimulationRanges, variability: float = 1.0
) -> F64:
    """``(k, 2, 14)`` signed electrode gains (fast swing, slow overshoot) of ``k`` shifts.

    Each shift is centred on a temporal/lateral sensor, falls off with distance, is weaker over
    the far hemisphere, and moves each electrode with its own polarity (the sensors slide in
    different directions), scaled so the most affected electrode has gain 1.
    """
    centre = _MOVE_CENTRES[rng.integers(0, len(_MOVE_CENTRES), k)]
    spread = _draw(rng, ranges.move_spread, variability, k)
    other = _draw(rng, ranges.move_other_side, variability, k)
    near = _LEFT[None, :] == _LEFT[centre][:, None]
    w = np.exp(-_DIST[centre] / spread[:, None]) * np.where(near, 1.0, other[:, None])
    g = w[:, None, :] * rng.uniform(0.5, 1.0, (k, 2, len(ELECTRODES)))
    g *= rng.choice((-1.0, 1.0), (k, 2, len(ELECTRODES)))
    g[:, 1] *= rng.uniform(0.3, 1.0, (k, 1))  # the overshoot is the smaller part
    peak = np.abs(g).sum(axis=1).max(axis=1)
    return np.asarray(g / peak[:, None, None], dtype=np.float64)


# --- the simulation ----------------------------------------------------------------------------


def _check_args(
    duration: float, seed: int, fs: int, rates: tuple[float, float], variability: float
) -> None:
    """Reject arguments that cannot make a recording, naming the CLI flag to fix."""
    if not math.isfinite(duration) or duration < 1:
        raise EegstreamError(
            f"--duration must be at least 1 second; got {duration}; "
            f"use e.g. --duration 300 (artifacts start after the {BASELINE_S:g} s baseline)"
        )
    if seed < 0:
        raise EegstreamError(f"--seed must be 0 or a positive integer; got {seed}")
    if fs not in SUPPORTED_FS:
        raise EegstreamError(
            f"--fs must be one of {', '.join(map(str, SUPPORTED_FS))} Hz (Emotiv rates); got {fs}"
        )
    for flag, rate in zip(("--blink-rate", "--clench-rate"), rates, strict=True):
        if not math.isfinite(rate) or rate < 0:
            raise EegstreamError(f"{flag} must be >= 0 events per minute; got {rate}")
    if not math.isfinite(variability) or not 0 <= variability <= 2:
        raise EegstreamError(
            f"--subject-variability must be between 0 (average subject) and 2; got {variability}"
        )


def _schedule(
    rng: np.random.Generator,
    forced_rng: np.random.Generator,
    subject: Subject,
    ranges: SimulationRanges,
    duration: float,
    fs: float,
    blink_rate: float,
    clench_rate: float,
    planned: list[tuple[float, bool]] | None = None,
) -> tuple[I64, F64, npt.NDArray[np.bool_], dict[str, F64]]:
    """Place non-overlapping artifacts after the baseline, as a Poisson process with dead time.

    ``planned`` ``(onset s, is blink)`` replaces the Poisson process (a calibration protocol's
    responses to its cues); shapes are drawn as for any other event.

    Returns onset samples, durations (s, the whole event), whether each is a blink, and per-event
    shape parameters (``forced`` > 0 marks a forced blink). Forced blinks are drawn from
    ``forced_rng``, so a subject who never forces one keeps the schedule it always had.
    """
    rate = (blink_rate + clench_rate) / 60.0
    usable = duration - BASELINE_S - ranges.end_margin_s
    # draw more candidates than can fit (at least 200, so the rate check below does not depend
    # on the duration), then keep those that end in time
    n = int(max(usable, 0.0) * rate * 1.5) + 200 if rate > 0 else 0
    blink = rng.random(n) < (blink_rate / 60.0 / rate if rate > 0 else 0.0)
    if planned is not None:
        n = len(planned)
        blink = np.array([b for _, b in planned], dtype=bool)
    forced = blink & (forced_rng.random(n) < subject.forced_blink_probability)
    f_dur = _draw(forced_rng, ranges.forced_blink_duration_s, 1.0, n)
    b_dur = _events(
        rng, subject.blink_duration_s, ranges.blink_duration_event_sd, ranges.blink_duration_s, n
    )
    is_double = rng.random(n) < subject.double_blink_probability
    gap2 = _draw(rng, ranges.double_blink_gap_s, 1.0, n)
    b_dur2 = _events(
        rng, subject.blink_duration_s, ranges.blink_duration_event_sd, ranges.blink_duration_s, n
    )
    c_dur = _events(
        rng,
        subject.clench_duration_s,
        ranges.clench_duration_event_sd,
        ranges.clench_duration_s,
        n,
    )
    total = np.where(blink, b_dur + np.where(is_double, gap2 + b_dur2, 0.0), c_dur)
    total = np.where(forced, f_dur, total)  # a forced blink comes alone
    occupied = total + ranges.min_gap_s
    wait_mean = 1.0 / rate - float(occupied.mean()) if rate > 0 else 1.0
    if wait_mean < 0.2 and planned is None:
        most = 60.0 / (float(occupied.mean()) + 0.2)
        raise EegstreamError(
            f"--blink-rate {blink_rate:g} + --clench-rate {clench_rate:g} per minute do not fit: "
            f"each artifact takes ~{occupied.mean():.2f} s including the {ranges.min_gap_s:g} s "
            f"gap, so at most ~{most:.0f} per minute fit; lower the rates"
        )
    wait = rng.exponential(wait_mean, n)
    onset = BASELINE_S + np.cumsum(wait + np.concatenate(([0.0], occupied[:-1])))
    if planned is not None:
        onset = np.array([t for t, _ in planned], dtype=np.float64).reshape(n)
    keep = onset + total <= duration - ranges.end_margin_s
    # every clench stands clearly above the subject's own tonic EMG
    c_low = max(ranges.clench_rms_uv[0], ranges.clench_min_over_tonic * subject.tonic_emg_uv)
    c_span = (c_low, max(ranges.clench_rms_uv[1], c_low))
    params = {
        "b_dur": b_dur,
        "b_dur2": b_dur2,
        "gap2": gap2,
        "double": is_double.astype(np.float64),
        "rise": _draw(rng, ranges.blink_rise_fraction, 1.0, n),
        "rise2": _draw(rng, ranges.blink_rise_fraction, 1.0, n),
        "b_amp": _events(
            rng,
            subject.blink_amplitude_uv,
            ranges.blink_amplitude_event_sd,
            ranges.blink_amplitude_uv,
            n,
        ),
        "ratio2": _draw(rng, ranges.double_blink_second_ratio, 1.0, n),
        "c_rms": _events(rng, subject.clench_rms_uv, ranges.clench_rms_event_sd, c_span, n),
        "c_rise": _draw(rng, ranges.clench_ramp_s, 1.0, n),
        "c_fall": _draw(rng, ranges.clench_ramp_s, 1.0, n),
        "forced": forced.astype(np.float64),
        "f_dur": f_dur,
        "f_amp": _events(
            forced_rng,
            subject.forced_blink_uv,
            ranges.forced_blink_event_sd,
            ranges.forced_blink_uv,
            n,
        ),
        "f_rise": _draw(forced_rng, ranges.forced_blink_ramp, 1.0, n),
        "f_fall": _draw(forced_rng, ranges.forced_blink_ramp, 1.0, n),
    }
    params = {k: p[keep] for k, p in params.items()}
    onset_samples = np.round(onset[keep] * fs).astype(np.int64)
    return onset_samples, total[keep], blink[keep], params


_PLACEMENT_TRIES = 12
#: Raises and movements last seconds; between 18 artifacts a minute few random starts fit them.
_LONG_TRIES = 64


def _free_starts(
    rng: np.random.Generator,
    busy: npt.NDArray[np.bool_],
    lengths: I64,
    fs: float,
    tries: int = _PLACEMENT_TRIES,
) -> I64:
    """Place unlabelled confounders at random where ``busy`` is False for their whole length.

    Returns, sorted by start, the indices of the candidates that fit, and their start samples;
    accepted confounders mark themselves busy so they never overlap each other.
    """
    n_total = busy.shape[0]
    first = int(BASELINE_S * fs)
    k = len(lengths)
    if k == 0 or n_total - first <= 0:
        return np.zeros((0, 2), np.int64)
    # a few tries per confounder, the first that lands in a free stretch wins
    tries_at = rng.integers(first, n_total, (k, tries))
    ends = tries_at + lengths[:, None]
    busy_cum = np.concatenate(([0], np.cumsum(busy)))
    fits = (ends <= n_total) & (busy_cum[np.minimum(ends, n_total)] - busy_cum[tries_at] == 0)
    ok = fits.any(axis=1)
    starts = tries_at[np.arange(k), np.argmax(fits, axis=1)]
    ends = starts + lengths
    cand = np.flatnonzero(ok)
    cand = cand[np.argsort(starts[cand], kind="stable")]
    # candidates overlapping an earlier one are dropped
    s, e = starts[cand], ends[cand]
    clash = np.zeros(len(cand), bool)
    clash[1:] = s[1:] < np.maximum.accumulate(e)[:-1]
    cand = cand[~clash]
    idx, _, _ = _ragged(starts[cand], lengths[cand])
    busy[idx] = True
    return np.stack([cand, starts[cand]], axis=1).astype(np.int64)


def _blink_source(onsets: I64, p: dict[str, F64], n: int, fs: float) -> F64:
    """Blink deflections (peak at AF3/AF4 scale), asymmetric raised cosines, doubles included."""
    src = np.zeros(n)
    first = (onsets, p["b_dur"], p["rise"], p["b_amp"])
    dbl = p["double"] > 0
    second = (
        onsets[dbl] + np.round((p["b_dur"][dbl] + p["gap2"][dbl]) * fs).astype(np.int64),
        p["b_dur2"][dbl],
        p["rise2"][dbl],
        p["b_amp"][dbl] * p["ratio2"][dbl],
    )
    for start, dur, rise_frac, amp in (first, second):
        length = np.maximum(np.round(dur * fs), 2).astype(np.int64)
        rise = np.maximum(np.round(length * rise_frac), 1)
        fall = np.maximum(length - rise, 1)
        idx, seg, off = _ragged(start, length)
        o, r = off.astype(np.float64), rise[seg]
        shape = np.where(
            o < r,
            0.5 - 0.5 * np.cos(np.pi * o / r),
            0.5 + 0.5 * np.cos(np.pi * (o - r) / fall[seg]),
        )
        src[idx] += amp[seg] * shape
    return src


def _forced_blink_source(
    onsets: I64, p: dict[str, F64], n: int, fs: float, coupling_hz: float
) -> F64:
    """Forced blinks (peak at F7/F8 scale) as the AC-coupled headset records them.

    A raised-cosine pulse per blink, then the front end's first-order high-pass: the plateau
    sags and an undershoot of ~(pulse area / time constant) recovers over seconds.
    """
    src = np.zeros(n)
    if len(onsets) == 0:
        return src
    length = np.maximum(np.round(p["f_dur"] * fs), 2).astype(np.int64)
    rise = np.maximum(np.round(length * p["f_rise"]), 1).astype(np.int64)
    fall = np.maximum(np.round(length * p["f_fall"]), 1).astype(np.int64)
    idx, seg, off = _ragged(onsets, length)
    src[idx] = p["f_amp"][seg] * _ramp(off, length[seg], rise[seg], fall[seg])
    a = 1.0 / (1.0 + 2.0 * math.pi * coupling_hz / fs)  # RC / (RC + dt)
    return np.asarray(lfilter([a, -a], [1.0, -a], src), dtype=np.float64)


def _add_confounders(
    rng: np.random.Generator,
    x: F64,
    emg_gain: F64,
    subject: Subject,
    busy: npt.NDArray[np.bool_],
    ranges: SimulationRanges,
    duration: float,
    fs: float,
) -> dict[str, I64]:
    """Add saccades, electrode pops and talking EMG (gain) in place; return their spans."""
    n, n_ch = x.shape
    minutes = max(duration - BASELINE_S, 0.0) / 60.0
    spans: dict[str, I64] = {}

    # saccades: look aside (smooth step), hold, look back; polarity by direction; most are
    # modest, a subject's large ones reach hundreds of uV; bigger ones take longer (main
    # sequence), and a vertical part of either sign steps the vertical-EOG (blink) field
    k = int(rng.poisson(ranges.saccade_rate_per_min * minutes))
    size = _events(rng, subject.saccade_uv, ranges.saccade_event_sd, ranges.saccade_uv, k)
    deg = size / ranges.saccade_uv_per_degree
    move_s = (0.021 + 0.0022 * deg) * rng.uniform(0.8, 1.25, k)
    move_s = np.clip(move_s, *ranges.saccade_duration_s)
    move = np.maximum(np.round(move_s * fs), 1).astype(np.int64)
    length = move * 2 + np.round(_draw(rng, ranges.fixation_s, 1.0, k) * fs).astype(np.int64)
    amp = size * rng.choice((-1.0, 1.0), k)
    vertical = size * _draw(rng, ranges.saccade_vertical, 1.0, k)
    cand, start = _free_starts(rng, busy, length, fs).T
    idx, seg, off = _ragged(start, length[cand])
    shape = _ramp(off, length[cand][seg], move[cand][seg], move[cand][seg])
    heog, veog = np.zeros(n), np.zeros(n)
    heog[idx] = amp[cand][seg] * shape
    veog[idx] = vertical[cand][seg] * shape
    x += heog[:, None] * SACCADE_GAIN + veog[:, None] * subject.blink_gain
    spans["saccade"] = np.stack([start, length[cand]], axis=1)

    # talking / swallowing: short, weak EMG bursts
    k = int(rng.poisson(ranges.talk_rate_per_min * minutes))
    length = np.round(_draw(rng, ranges.talk_duration_s, 1.0, k) * fs).astype(np.int64)
    rms = _draw(rng, ranges.talk_rms_uv, 1.0, k)
    cand, start = _free_starts(rng, busy, length, fs).T
    idx, seg, off = _ragged(start, length[cand])
    ramp = np.maximum(length[cand] // 4, 1)[seg]
    env = np.zeros(n)
    env[idx] = rms[cand][seg] * _ramp(off, length[cand][seg], ramp, ramp)
    emg_gain += env[:, None] * TALK_GAIN
    spans["talk"] = np.stack([start, length[cand]], axis=1)

    # electrode pops: one channel jumps and recovers exponentially
    k = int(rng.poisson(ranges.pop_rate_per_min * minutes))
    tau = _draw(rng, ranges.pop_tau_s, 1.0, k) * fs
    length = np.round(5 * tau).astype(np.int64)
    amp = _draw(rng, ranges.pop_uv, 1.0, k) * rng.choice((-1.0, 1.0), k)
    chan = rng.integers(0, n_ch, k)
    cand, start = _free_starts(rng, busy, length, fs).T
    idx, seg, off = _ragged(start, length[cand])
    x[idx, chan[cand][seg]] += amp[cand][seg] * np.exp(-off / tau[cand][seg])
    spans["pop"] = np.stack([start, length[cand]], axis=1)
    return spans


def _add_tongue(
    rng: np.random.Generator,
    x: F64,
    subject: Subject,
    busy: npt.NDArray[np.bool_],
    ranges: SimulationRanges,
    duration: float,
    fs: float,
) -> I64:
    """Add tongue movements (glossokinetic potentials) in place; return their spans.

    Each movement is one to a few slow lobes (pushes of the tongue) under a smooth envelope,
    scaled to its peak-to-peak at F7/F8, in the subject's field tilted towards one side.
    """
    minutes = max(duration - BASELINE_S, 0.0) / 60.0
    k = int(rng.poisson(ranges.tongue_rate_per_min * minutes))
    dur = _draw(rng, ranges.tongue_duration_s, 1.0, k)
    length = np.maximum(np.round(dur * fs), 2).astype(np.int64)
    lobes = np.maximum(np.round(dur / _draw(rng, ranges.tongue_lobe_s, 1.0, k)), 1)
    amp = _events(rng, subject.tongue_uv, ranges.tongue_event_sd, ranges.tongue_uv, k)
    amp *= rng.choice((-1.0, 1.0), k)
    side = np.where(_LEFT, 1.0, -1.0)
    gain = subject.tongue_gain * (1.0 + _draw(rng, ranges.tongue_asymmetry, 1.0, k)[:, None] * side)
    cand, start = _free_starts(rng, busy, length, fs, _LONG_TRIES).T
    idx, seg, off = _ragged(start, length[cand])
    phase = np.pi * (off + 1) / (length[cand][seg] + 1)
    wave = np.sin(lobes[cand][seg] * phase) * np.sin(phase)
    top, bottom = np.full(len(cand), -np.inf), np.full(len(cand), np.inf)
    np.maximum.at(top, seg, wave)
    np.minimum.at(bottom, seg, wave)
    wave *= amp[cand][seg] / (top - bottom)[seg]  # peak-to-peak = amp at gain 1 (F7/F8)
    x[idx] += wave[:, None] * gain[cand][seg]
    return np.stack([start, length[cand]], axis=1)


def _shift_wave(off: I64, fast: F64, slow: F64, length: I64) -> F64:
    """``(m, 2)`` fast and slow alpha-function waves of a headset shift, tapered to 0 at the end."""
    o = off.astype(np.float64)
    taper = 0.5 + 0.5 * np.cos(np.pi * np.clip((o - 0.75 * length) / (0.25 * length), 0.0, 1.0))
    a = o / fast
    b = o / slow
    wave = np.stack([a * np.exp(1.0 - a), b * np.exp(1.0 - b)], axis=1) * taper[:, None]
    return np.asarray(wave, dtype=np.float64)


def _add_brows_and_movements(
    rng: np.random.Generator,
    x: F64,
    emg_gain: F64,
    subject: Subject,
    busy: npt.NDArray[np.bool_],
    ranges: SimulationRanges,
    duration: float,
    fs: float,
) -> dict[str, I64]:
    """Add eyebrow raises (EMG + headset shift) and bare movements in place; return spans.

    A raise's span covers its EMG and its shift, whose slow overshoot outlasts the EMG.
    """
    n, n_ch = x.shape
    minutes = max(duration - BASELINE_S, 0.0) / 60.0
    spans: dict[str, I64] = {}

    # eyebrow raises
    k = int(rng.poisson(ranges.brow_rate_per_min * minutes))
    emg_len = np.maximum(np.round(_draw(rng, ranges.brow_duration_s, 1.0, k) * fs), 2)
    rms = _events(rng, subject.brow_emg_uv, ranges.brow_emg_event_sd, ranges.brow_emg_uv, k)
    moves = rng.random(k) < subject.brow_move_probability
    amp = _events(rng, subject.brow_move_uv, ranges.brow_move_event_sd, ranges.brow_move_uv, k)
    fast = _draw(rng, ranges.move_fast_tau_s, 1.0, k) * fs
    slow = _draw(rng, ranges.move_slow_tau_s, 1.0, k) * fs
    jitter = rng.uniform(0.8, 1.25, (k, 2, n_ch))  # the same shift, never exactly the same
    length = np.where(moves, np.maximum(emg_len, np.round(5 * slow)), emg_len).astype(np.int64)
    cand, start = _free_starts(rng, busy, length, fs, _LONG_TRIES).T
    idx, seg, off = _ragged(start, length[cand])
    e_len = emg_len.astype(np.int64)[cand][seg]
    ramp = np.maximum(e_len // 5, 1)
    in_emg = off < e_len
    env = np.zeros(n)
    env[idx[in_emg]] = (rms[cand][seg] * _ramp(off, e_len, ramp, ramp))[in_emg]
    emg_gain += env[:, None] * subject.brow_gain
    gain = subject.brow_move_gain[None] * jitter[cand]  # (raises, 2, 14)
    a = (amp * moves)[cand][seg]
    wave = _shift_wave(off, fast[cand][seg], slow[cand][seg], length[cand][seg])
    x[idx] += a[:, None] * np.einsum("mk,mkc->mc", wave, gain[seg])
    spans["eyebrow"] = np.stack([start, length[cand]], axis=1)

    # head or cable movements: a shift of the whole headset without muscle activity
    k = int(rng.poisson(ranges.movement_rate_per_min * minutes))
    lo, hi = ranges.movement_uv
    amp = lo * (hi / lo) ** rng.random(k)  # log-uniform: small shifts are the common ones
    fast = _draw(rng, ranges.move_fast_tau_s, 1.0, k) * fs
    slow = _draw(rng, ranges.move_slow_tau_s, 1.0, k) * fs
    gains = _move_gains(rng, k, ranges)
    length = np.round(5 * slow).astype(np.int64)
    cand, start = _free_starts(rng, busy, length, fs, _LONG_TRIES).T
    idx, seg, off = _ragged(start, length[cand])
    wave = _shift_wave(off, fast[cand][seg], slow[cand][seg], length[cand][seg])
    x[idx] += amp[cand][seg][:, None] * np.einsum("mk,mkc->mc", wave, gains[cand][seg])
    spans["movement"] = np.stack([start, length[cand]], axis=1)
    return spans


def _add_dropouts(
    rng: np.random.Generator,
    x: F64,
    busy: npt.NDArray[np.bool_],
    ranges: SimulationRanges,
    duration: float,
    fs: float,
) -> tuple[npt.NDArray[np.bool_], I64]:
    """Brief signal loss: lost samples replaced by linear interpolation, as EmotivPRO does.

    Interpolation commutes with adding the DC offsets, so this runs on the final signal.
    """
    k = int(rng.poisson(ranges.dropout_rate_per_min * max(duration - BASELINE_S, 0.0) / 60.0))
    lost = np.round(_draw(rng, ranges.dropout_samples, 1.0, k)).astype(np.int64)
    cand, start = _free_starts(rng, busy, lost + 2, fs).T  # a real sample on either side
    start, length = start + 1, lost[cand]
    idx, seg, off = _ragged(start, length)
    frac = ((off + 1) / (length[seg] + 1))[:, None]
    x[idx] = (1 - frac) * x[start[seg] - 1] + frac * x[start[seg] + length[seg]]
    interpolated = np.zeros(x.shape[0], dtype=bool)
    interpolated[idx] = True
    return interpolated, np.stack([start, length], axis=1)


def simulate_with_truth(
    duration: float,
    seed: int,
    *,
    fs: int = 128,
    blink_rate: float | None = None,
    clench_rate: float | None = None,
    subject_variability: float = 1.0,
    confounders: bool = True,
    ranges: SimulationRanges = RANGES,
    subject: Subject | None = None,
    schedule: list[tuple[float, str]] | None = None,
) -> tuple[Recording, Truth]:
    """Simulate a recording and return it with its ground truth (subject, unlabelled events).

    See :func:`simulate_recording` for the arguments. ``subject`` replaces the one drawn from
    ``seed`` (the same person in another recording, or one changed with
    ``dataclasses.replace``); ``schedule`` ``(onset s, "blink" | "jaw_clench")`` replaces the
    random artifact times (:func:`eegstream.calibrate.simulate_protocol`).
    """
    b_rate = ranges.blink_rate_per_min if blink_rate is None else float(blink_rate)
    c_rate = ranges.clench_rate_per_min if clench_rate is None else float(clench_rate)
    _check_args(duration, seed, fs, (b_rate, c_rate), subject_variability)
    if subject is None:
        subject = draw_subject(seed, subject_variability, ranges)
    planned = None if schedule is None else [(t, lab == "blink") for t, lab in schedule]
    # streams 8-10 (forced blinks, tonic EMG, tongue) came later: spawning more keeps the first
    # ones as they were
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence([seed, 2]).spawn(11)]
    n = int(round(duration * fs))
    n_ch = len(ELECTRODES)
    t = np.arange(n, dtype=np.float64) / fs
    freqs = np.fft.rfftfreq(n, 1.0 / fs)

    # spatially correlated 1/f^beta background (mix white noise across neighbours, then shape)
    corr = np.exp(-_DIST / subject.spatial_length)
    mix = np.linalg.cholesky(corr)
    pink = np.maximum(freqs, 0.5) ** (-subject.background_exponent / 2)
    pink[0] = 0.0
    x = _shaped_noise(rngs[0], n, n_ch, pink) @ mix.T
    x *= subject.background_rms_uv * subject.channel_gain
    # white floor, its rms given over 0-64 Hz: the same density at 256 Hz
    floor = subject.noise_floor_uv * subject.contact_noise * math.sqrt(fs / 128.0)
    x += floor * rngs[0].standard_normal((n, n_ch))

    # posterior alpha: common + per-hemisphere narrow-band sources, slowly waxing and waning
    sigma = subject.alpha_bandwidth_hz / 2.355
    peak = np.exp(-0.5 * ((freqs - subject.alpha_freq_hz) / sigma) ** 2)
    src = _shaped_noise(rngs[1], n, 3, peak)
    slow = _shaped_noise(rngs[1], n, 1, (freqs > 0) * np.exp(-0.5 * (freqs / 0.08) ** 2))[:, 0]
    env = np.exp(subject.alpha_modulation * slow - subject.alpha_modulation**2)
    side = np.where(_LEFT, src[:, 1:2], src[:, 2:3])
    alpha = (np.sqrt(0.7) * src[:, :1] + np.sqrt(0.3) * side) * env[:, None]
    x += alpha * (subject.alpha_rms_uv * ALPHA_GAIN)

    # slow drift: Ornstein-Uhlenbeck per channel (half shared), stationary from the first sample
    a = math.exp(-1.0 / (subject.drift_tau_s * fs))
    shocks = rngs[2].standard_normal((n, n_ch)) * 0.7 + rngs[2].standard_normal((n, 1)) * 0.7
    init = rngs[2].standard_normal(n_ch)
    drift = lfilter([math.sqrt(1 - a * a)], [1.0, -a], shocks, axis=0, zi=a * init[None, :])[0]
    x += subject.drift_rms_uv / math.sqrt(0.98) * drift

    # mains interference
    phase = rngs[2].uniform(0, 2 * np.pi, n_ch)
    x += subject.mains_uv * np.sin(2 * np.pi * subject.mains_hz * t[:, None] + phase)

    # labelled artifacts
    onsets, totals, is_blink, p = _schedule(
        rngs[3], rngs[8], subject, ranges, duration, fs, b_rate, c_rate, planned
    )
    forced = p["forced"] > 0
    plain = is_blink & ~forced
    x += (
        _blink_source(onsets[plain], {k: v[plain] for k, v in p.items()}, n, fs)[:, None]
        * subject.blink_gain
    )
    f_src = _forced_blink_source(
        onsets[forced], {k: v[forced] for k, v in p.items()}, n, fs, ranges.coupling_hz
    )
    x += f_src[:, None] * subject.forced_blink_gain

    # jaw clenches: band-limited EMG (independent per electrode plus a shared muscle part)
    lo, hi = subject.emg_band_hz
    band = 0.5 - 0.5 * np.cos(np.pi * np.clip((freqs - lo + 3) / 6, 0, 1))
    band *= 0.5 - 0.5 * np.cos(np.pi * np.clip((hi + 3 - freqs) / 6, 0, 1))
    emg = 0.6 * _shaped_noise(rngs[4], n, n_ch, band)
    emg += 0.8 * _shaped_noise(rngs[4], n, 1, band)
    cl = ~is_blink
    c_len = np.maximum(np.round(totals[cl] * fs), 1).astype(np.int64)
    idx, seg, off = _ragged(onsets[cl], c_len)
    rise = np.round(p["c_rise"][cl] * fs).astype(np.int64)
    fall = np.round(p["c_fall"][cl] * fs).astype(np.int64)
    c_env = np.zeros(n)
    c_env[idx] = p["c_rms"][cl][seg] * _ramp(off, c_len[seg], rise[seg], fall[seg])
    emg_gain = c_env[:, None] * subject.clench_gain
    # tonic EMG: the same muscles' resting activity, slowly waxing and waning (unit mean power)
    slow = (freqs > 0) * np.exp(-0.5 * (freqs / ranges.tonic_modulation_hz) ** 2)
    mod = _shaped_noise(rngs[9], n, 1, slow)[:, 0]
    depth = subject.tonic_modulation
    tonic_env = subject.tonic_emg_uv * np.exp(depth * mod - depth**2)
    emg_gain += tonic_env[:, None] * subject.tonic_gain

    # unlabelled confounders, kept clear of the labelled artifacts and of the baseline
    spans: dict[str, I64] = {}
    busy = np.zeros(n, dtype=bool)
    margin = int(ranges.confounder_margin_s * fs)
    idx, _, _ = _ragged(
        np.maximum(onsets - margin, 0), np.round(totals * fs).astype(np.int64) + 2 * margin
    )
    busy[idx[idx < n]] = True
    if confounders:
        spans = _add_confounders(rngs[5], x, emg_gain, subject, busy, ranges, duration, fs)
        spans |= _add_brows_and_movements(rngs[7], x, emg_gain, subject, busy, ranges, duration, fs)
        spans["tongue"] = _add_tongue(rngs[10], x, subject, busy, ranges, duration, fs)
    x += emg * emg_gain
    interpolated = np.zeros(n, dtype=bool)
    if confounders:
        interpolated, spans["dropout"] = _add_dropouts(rngs[6], x, busy, ranges, duration, fs)
    x += subject.dc_offset_uv

    # quantise to the headset LSB and clip to the ADC's codes (flat tops at the rails);
    # k * q_micro / 1e6 is the double nearest the exact decimal, so any writer printing >= 6
    # decimals round-trips bit for bit
    q_micro = round(ranges.quantum_uv * 1e6)
    codes = np.clip(np.rint(x / ranges.quantum_uv), 0, ranges.adc_codes - 1)
    data = codes * q_micro / 1e6

    t0 = 1.7e9 + seed * 1000.0
    timestamps = t0 + np.arange(n, dtype=np.float64) / fs
    markers = [
        Marker(
            sample=int(s),
            time=float(timestamps[s]),
            value=BLINK_MARKER if b else CLENCH_MARKER,
            label=DEFAULT_MARKER_LABELS[BLINK_MARKER if b else CLENCH_MARKER],
            duration=round(float(d), 4),
        )
        for s, d, b in zip(onsets.tolist(), totals.tolist(), is_blink.tolist(), strict=True)
    ]
    # keys as eegstream.io.emotiv.read_recording reports them (the writer reads the same ones)
    metadata: dict[str, Any] = {
        "title": f"eegstream simulation seed {seed}",
        "headset": subject.headset,
        "headset_type": _HEADSET_TYPES.get(subject.headset, subject.headset.upper()),
        "serial": f"SIM{seed:08X}",
        "firmware": "simulated",
        "subject": subject.subject_id,
        "start_time": t0,
        "recorded": datetime.fromtimestamp(t0, tz=UTC).isoformat(),
        "source_fs": float(fs),
        # one flat string without commas, so a metadata line keeps it intact
        "simulator": (
            f"seed={seed};duration={duration:g};blink_rate={b_rate:g};clench_rate={c_rate:g};"
            f"subject_variability={subject_variability:g};confounders={int(confounders)}"
        ),
    }
    rec = Recording(
        data=data,
        timestamps=timestamps,
        fs=float(fs),
        markers=markers,
        interpolated=interpolated,
        metadata=metadata,
        source=f"<simulated seed={seed}>",
    )
    log.debug(
        "simulated %s s at %s Hz, seed %s: %s markers, subject %s",
        duration,
        fs,
        seed,
        len(markers),
        subject.subject_id,
    )
    truth = Truth(subject=subject, markers=markers, confounders=spans, forced_blinks=onsets[forced])
    return rec, truth


def simulate_recording(
    duration: float,
    seed: int,
    *,
    fs: int = 128,
    blink_rate: float | None = None,
    clench_rate: float | None = None,
    subject_variability: float = 1.0,
    confounders: bool = True,
) -> Recording:
    """Simulate an Emotiv EPOC recording with blink (22) and jaw-clench (23) markers.

    Parameters
    ----------
    duration
        Seconds. The first 30 s (the detector's baseline) carry no artifacts or confounders.
    seed
        Non-negative; the same seed and arguments give a bit-identical recording, and the subject
        depends on the seed alone.
    fs
        128 or 256 Hz, generated natively (256 Hz exercises the resampler path).
    blink_rate, clench_rate
        Events per minute after the baseline; defaults 12 and 6 (``SimulationRanges``), dense on
        purpose because the recordings are training data.
    subject_variability
        0 = the average subject (middle of every range), 1 = uniform over the ranges, up to 2.
    confounders
        Add unlabelled saccades, tongue movements, electrode pops, brief signal loss, talking
        EMG, eyebrow raises (frontalis EMG with a headset shift) and head/cable movements.
    """
    rec, _ = simulate_with_truth(
        duration,
        seed,
        fs=fs,
        blink_rate=blink_rate,
        clench_rate=clench_rate,
        subject_variability=subject_variability,
        confounders=confounders,
    )
    return rec


def demo_recording_path() -> Path:
    """The bundled 3-minute demo recording (EmotivPRO CSV, gzip), shipped inside the package."""
    if not DEMO_FILE.is_file():
        raise EegstreamError(
            f"the bundled demo recording {DEMO_FILE} is missing; regenerate it with "
            f"'eegstream simulate {DEMO_FILE} --duration {DEMO_DURATION_S:g} --seed {DEMO_SEED}'"
        )
    return DEMO_FILE


__all__ = [
    "RANGES",
    "SimulationRanges",
    "Subject",
    "Truth",
    "demo_recording_path",
    "draw_subject",
    "simulate_recording",
    "simulate_with_truth",
]
