"""Why a video can be quarantined: the reason codes in the `quarantine` table."""

REASON_CODES = (
    "empty_file",  # zero bytes
    "not_a_video",  # text, an image, a playlist, an unknown container
    "corrupt_stream",  # a video container from which nothing decodes
    "unsupported_codec",  # no decoder for the stream
    "no_video_stream",  # audio only, data only
    "absurd_dimensions",  # more pixels per frame than the limit
    "duration_out_of_range",  # longer (or shorter) than the limits
    "decode_timeout",  # decoding took longer than the time limit (or hung and was killed)
    "too_many_frames_failed",  # most frames failed to decode
    "memory_limit",  # the decode needed more memory than the per-video cap
    "decode_crashed",  # the process decoding the video died (a crash in FFmpeg, a signal)
    "too_many_frames",  # more sampled frames or bytes than the per-video cap (an outlier, kept out of memory)
    "bad_decoder_output",  # the decoding process sent something malformed (not a JPEG of its stated size, ...)
    # set by the sampling job, not by the sampler: the manifest names no user (checked before
    # anything is read: a call nobody can be credited with is never decoded), the object is
    # gone, or an unexpected error of the decoder on this file. Faults of the infrastructure
    # (the object store, the disk, fork) are never quarantined: they fail the task, which retries.
    "missing_user",
    "missing_file",
    "decode_error",
)
