"""Safe decoding of untrusted stored videos: N frames per second of presentation time.

`limits` (what a decode may do, what it returns), `probe` (opening a container, checking
its stream), `decode` (the sampling pass), `isolation` (the same decode in a forked child
with a memory cap and a hard time limit: what the Spark job uses).
"""

from percolate.video.limits import DecodeLimits, SampledFrame, VideoInfo, VideoRejected

__all__ = ["DecodeLimits", "SampledFrame", "VideoInfo", "VideoRejected"]
