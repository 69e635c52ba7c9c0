"""Ground-truth tables of CLEARER spaces: every architecture trained from scratch with several seeds.

NAS for classification judges its searches on tabular benchmarks (NAS-Bench-101/201); this is the same for
multi-scale restoration, small enough to build on a CPU::

    from clearer_nni import bench

    df = bench.table()                  # one row per architecture and seed
    bench.lookup("PF|PP")               # the rows of one architecture (a code, a Genotype or a genotype file)
    bench.where("runs/search/genotype.json")   # "ground-truth table corr50-2x2: PF|PP: 2nd of 16 ..."

``clearer-nni bench build | query | stats | list`` is the command (:mod:`clearer_nni.bench.command`).
"""

from .build import architectures, build_table, read_table, train_row
from .recipe import RecipeError, TableRecipe, load_recipe
from .stats import PRIMARY, Agreement, Standing, agreement, means, pareto_distance, percentile, standing
from .tables import (DEFAULT_TABLE, TABLES_DIR, TableError, architecture_of, available, lookup, matching_table, meta,
                     recipe_of, table, where)

__all__ = ["PRIMARY", "Agreement", "DEFAULT_TABLE", "RecipeError", "Standing", "TABLES_DIR", "TableError",
           "TableRecipe", "agreement", "architecture_of", "architectures", "available", "build_table", "load_recipe",
           "lookup", "matching_table", "means", "meta", "pareto_distance", "percentile", "read_table", "recipe_of",
           "standing", "table", "train_row", "where"]
