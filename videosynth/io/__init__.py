"""Video and audio I/O with PyAV: the boundary where files become arrays and arrays files.

Frames here are ``uint8 [T, H, W, 3]`` numpy arrays (RGB); sound is mono ``float32 [S]`` in
``[-1, 1]``. One module per concern:

- :mod:`~videosynth.io.files`: suffixes, frame folders, opening containers, temporary names
- :mod:`~videosynth.io.video_read`: probe, seek and decode clips (``read_clip``, ``read_all``)
- :mod:`~videosynth.io.orientation`: display matrices: frames turned upright, as players show them
- :mod:`~videosynth.io.video_write`: encode videos (``write_video``)
- :mod:`~videosynth.io.audio_read`: probe and decode sound windows, the decoder pool
- :mod:`~videosynth.io.resample`: the polyphase Kaiser-sinc resampler
- :mod:`~videosynth.io.audio_write`: audio files and soundtrack streams
- :mod:`~videosynth.io.reader_cache`: :class:`VideoReader`, open containers kept, and its fork hook
- :mod:`~videosynth.io.grids`: many clips tiled into one video or still
- :mod:`~videosynth.io.samples`: generated clips to files as they are made (``sample`` and the web page)
- :mod:`~videosynth.io.convert`: float ``[-1, 1]`` <-> uint8 conversion
- :mod:`~videosynth.io.packet_errors`: undecodable packets skipped, counted, refused beyond a share

The names below are the public interface; tuning constants stay in their modules (patch them there).
"""

from videosynth.io.audio_read import AudioInfo, clip_window, probe_audio, read_audio, read_clip_audio, soundtrack
from videosynth.io.audio_write import AUDIO_ENCODERS, check_audio, write_audio
from videosynth.io.convert import to_float, to_uint8, to_uint8_truncating
from videosynth.io.files import (
    AUDIO_EXTENSIONS,
    IMAGE_EXTENSIONS,
    SOUNDTRACK_STEM,
    TEMP_MARK,
    VIDEO_EXTENSIONS,
    is_temp,
    list_frames,
    natural_key,
    temp_path,
)
from videosynth.io.grids import filmstrip, make_grid, write_grid
from videosynth.io.packet_errors import skipped_packets
from videosynth.io.reader_cache import VideoReader
from videosynth.io.samples import Written, soundtrack_for, write_av_samples, write_samples
from videosynth.io.video_read import FRAME_FOLDER_FPS, VideoInfo, probe, read_all, read_clip, stored_size
from videosynth.io.video_write import write_video

__all__ = [
    "AUDIO_ENCODERS", "AUDIO_EXTENSIONS", "FRAME_FOLDER_FPS", "IMAGE_EXTENSIONS", "SOUNDTRACK_STEM", "TEMP_MARK",
    "VIDEO_EXTENSIONS", "AudioInfo", "VideoInfo", "VideoReader", "check_audio", "clip_window", "filmstrip",
    "is_temp", "list_frames", "make_grid", "natural_key", "probe", "probe_audio", "read_all", "read_audio",
    "read_clip", "read_clip_audio", "stored_size", "skipped_packets", "soundtrack", "temp_path", "to_float", "to_uint8", "to_uint8_truncating",
    "write_audio", "write_grid", "write_video", "Written", "soundtrack_for", "write_samples", "write_av_samples",
]
