"""Audio data: WAV decoding, resampling to 16 kHz, fixed-length clips,
folders, arrays, `tf.data` and augmentation.

Waveforms are float32 at 16 kHz on the int16 scale (-32768..32767), the
speech encoder's input (`keras_tl.backbones.speech_embedding`). By concern:

- `wav`: WAV bytes and files decoded in TensorFlow ops (also the serving
  signature's input stage, `serving_wav_fn`).
- `clips`: band-limited resampling and centred fixed-length clips.
- `inputs`: class folders, arrays and `tf.data` inputs, checked and made
  into clips.
- `augmentation` and `pipeline`: `AudioAugmentation` and the batched
  `tf.data` pipeline.
"""

from keras_tl.data.audio.augmentation import AudioAugmentation
from keras_tl.data.audio.clips import SAMPLE_RATE, fit_clip, resample
from keras_tl.data.audio.inputs import (audio_dataset_to_arrays, is_audio_data, load_audio_folder,
                                        prepare_audio_arrays, prepare_waveforms)
from keras_tl.data.audio.pipeline import make_audio_dataset
from keras_tl.data.audio.wav import decode_wav, read_wav, serving_wav_fn
