"""The rules file: loading, validation, kernels."""
