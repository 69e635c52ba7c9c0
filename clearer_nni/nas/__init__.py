"""The search: CLEARER's regularisers, the ClearerDARTS strategy and the genotype."""

from .genotype import Genotype, GenotypeError
from .regularizers import arch_entropy_loss, candidate_costs, complexity_loss, normalise_costs
from .strategy import ClearerDARTS, ClearerDartsModule

__all__ = ["ClearerDARTS", "ClearerDartsModule", "Genotype", "GenotypeError", "arch_entropy_loss",
           "candidate_costs", "complexity_loss", "normalise_costs"]
