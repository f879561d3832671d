"""Speech-to-text: the :class:`~jetfleet.voice.stt.base.Transcriber` interface, its backends, and backend choice.

Backends are imported lazily by :func:`jetfleet.voice.stt.loader.load_transcriber`: whisper_trt only exists on a
Jetson, and faster-whisper's native libraries are heavy.
"""
