"""`bpbot demo`: a self-contained run on the embedded sample tree."""
