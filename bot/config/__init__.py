"""The rules file: its declared schema (schema.py, fields.py), loading into
``Rules`` (rules.py), kernels and the errors that name file and key."""
