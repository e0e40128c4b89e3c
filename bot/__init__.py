"""bpbot: a patch bot for the Linux kernel backports mailing list."""

__version__ = "0.1.0"
