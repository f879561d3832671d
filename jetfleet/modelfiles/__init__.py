"""The model-directory contract shared by the agent (writer), the model server (reader) and the registry.

Frameworks, artifact suffixes, name/version/sha256 patterns, ``model.json`` metadata, tensor specs and the
errors a bad model directory raises. Light to import: pydantic and the standard library only.
"""
