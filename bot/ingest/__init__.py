"""Ingest: mail in (sources, spool), what each mail is (classify, silence), mail parsing."""
