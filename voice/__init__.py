"""The voice service: Whisper speech-to-text, Dutch/English command grammar, Unitree Go2 control."""
