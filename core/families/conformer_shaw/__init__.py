"""seamless conformer_shaw (w2v-BERT 2.0): recipe, fairseq2-semantics reference, fairseq2 backend."""

from .recipe import ConformerShawRecipe

RECIPES = (ConformerShawRecipe,)
