import numpy as np
import pytest
import soundfile

from speechport.core.errors import BadInput
from speechport.core.proof.audio import MIN_SAMPLES, load_clip

from conftest import CONFORMER_SHAW, S3PRL


def test_16k_mono_clip_is_read_as_is():
    clip = load_clip(CONFORMER_SHAW / "audio/s_speech_16k_mono.wav")
    expected, rate = soundfile.read(CONFORMER_SHAW / "audio/s_speech_16k_mono.wav", dtype="float32")
    assert rate == 16000 and clip.source_rate == 16000 and clip.source_channels == 1
    np.testing.assert_array_equal(clip.waveform, expected)


def test_flac_and_8k_clips_are_resampled_to_16k(tmp_path):
    flac = load_clip(CONFORMER_SHAW / "audio/s_short_0p3s_16k.flac")
    assert len(flac.waveform) == 4800
    noise = load_clip(CONFORMER_SHAW / "audio/s_noise_8k_mono.wav")
    assert noise.source_rate == 8000 and len(noise.waveform) == 24000
    # A 1 kHz tone recorded at 8 kHz comes out as the same tone sampled at 16 kHz.
    t8 = np.arange(8000) / 8000
    soundfile.write(tmp_path / "tone.wav", (0.5 * np.sin(2 * np.pi * 1000 * t8)).astype("float32"), 8000, subtype="FLOAT")
    tone = load_clip(tmp_path / "tone.wav").waveform
    t16 = np.arange(16000) / 16000
    expected = 0.5 * np.sin(2 * np.pi * 1000 * t16)
    assert np.abs(tone[200:-200] - expected[200:-200]).max() < 1e-3


def test_44k_stereo_channel_policy():
    path = S3PRL / "audio/commands_44k_stereo.wav"
    raw, rate = soundfile.read(path, dtype="float32", always_2d=True)
    assert rate == 44100 and raw.shape[1] == 2
    first = load_clip(path, channels="first")
    mean = load_clip(path, channels="mean")
    assert first.source_channels == 2 and len(first.waveform) == pytest.approx(raw.shape[0] * 16000 / 44100, abs=1)
    # the fixture's right channel is the left one at 0.6: first = L, mean = 0.8 L
    ratio = np.dot(mean.waveform, first.waveform) / np.dot(first.waveform, first.waveform)
    assert ratio == pytest.approx(0.8, abs=1e-3)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, "no such audio file"),
        (lambda p: p.write_bytes(b"this is not audio at all" * 10), "not an audio file"),
        (lambda p: soundfile.write(p, np.zeros(0, dtype="float32"), 16000), "empty"),
        (lambda p: soundfile.write(p, np.zeros(160, dtype="float32"), 16000), "too short"),
    ],
    ids=["missing", "not audio", "empty", "0.01 s"],
)
def test_bad_clips(tmp_path, make, message):
    path = tmp_path / "clip.wav"
    make(path)
    with pytest.raises(BadInput, match=message):
        load_clip(path)


def test_shortest_usable_clip_and_long_clip_limit(tmp_path):
    path = tmp_path / "edge.wav"
    soundfile.write(path, np.linspace(-0.1, 0.1, MIN_SAMPLES, dtype="float32"), 16000)
    assert len(load_clip(path).waveform) == MIN_SAMPLES
    long = tmp_path / "long.wav"
    soundfile.write(long, np.zeros(16000 * 3, dtype="float32"), 16000)
    with pytest.raises(BadInput, match="the clip is 3.0 s long; a comparison covers at most 2 s"):
        load_clip(long, max_seconds=2)


def test_a_segment_of_a_long_clip_is_compared_and_the_whole_clip_can_be_read(tmp_path):
    from speechport.core.proof.audio import MODEL_RATE, load_clip, load_recording

    rng = np.random.default_rng(5)
    samples = (rng.standard_normal(5 * 8000) * 0.1).astype(np.float32)  # 5 s at 8 kHz
    path = tmp_path / "long.wav"
    soundfile.write(path, samples, 8000, subtype="FLOAT")
    with pytest.raises(BadInput) as refused:
        load_clip(path, max_seconds=2)
    assert str(refused.value).endswith("the clip is 5.0 s long; a comparison covers at most 2 s, because attention "
                                       "memory grows with the square of the length (choose a segment of at most 2 s to compare)")
    assert "--max-seconds" not in str(refused.value) and "--start" in refused.value.for_cli()
    whole = load_recording(path)
    assert whole.seconds == 5.0 and whole.whole and whole.segment is None
    segment = load_clip(path, max_seconds=2, start=1.5, duration=2)
    assert segment.segment == (1.5, 3.5) and not segment.whole
    expected = load_recording(path).waveform[int(1.5 * MODEL_RATE): int(3.5 * MODEL_RATE)]
    assert len(segment.waveform) == len(expected)
    with pytest.raises(BadInput, match="the segment is 3.0 s long"):
        load_clip(path, max_seconds=2, start=1, duration=3)
    with pytest.raises(BadInput, match="the segment starts at 6 s, but the clip is 5.0 s long"):
        load_clip(path, start=6)
    with pytest.raises(BadInput, match="a segment must last a finite number of seconds above 0"):
        load_clip(path, duration=float("nan"))
