"""Glue between Snakemake/DVC and the library: stage runner, provenance, dvc.yaml sync, audit."""
