"""``data/factors/{model}/``: one safetensors file per fitting step (rules covariance, eigen,
correction, factors). Readers are the engine's ``CovarianceStats.load`` etc.; names live here."""

COVARIANCE = "covariance.safetensors"
EIGEN = "eigenbasis.safetensors"
CORRECTION = "correction.safetensors"
FACTORS = "factors.safetensors"
