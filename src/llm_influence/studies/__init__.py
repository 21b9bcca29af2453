"""Analyses and figures of the studies (sparsity, scale, cross-lingual, role-play, order flip,
layers, tokens, memorisation) and the summary table. Stage entry points: ``studies.stage``.
"""
