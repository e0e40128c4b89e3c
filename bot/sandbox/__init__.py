"""Running untrusted code: the one subprocess wrapper, bubblewrap, limits, cgroups, git."""
