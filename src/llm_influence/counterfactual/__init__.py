"""Counterfactual validation of influence scores: retrain on document subsets, compare with the
scores' predictions (linear datamodeling score) and remove each method's top documents.

    subsets.py  which documents each retraining keeps (seeded masks, leave-out sets)
    lds.py      the LDS, its bootstrap interval, leave-out deltas (numpy/scipy only)
    measure.py  log p(completion | prompt) of every query under a model
    stage.py    the retraining entry points (rules retrain_subset, retrain_leaveout)
"""
