"""Fine-tuned CTC speech recognition checkpoints: recipe (the output layer and the dictionary, the
encoder by its own family's rules), reference (the encoder's reference and the output layer),
the dictionary reader, and the two sides of a comparison."""

from .recipe import CtcRecipe

RECIPES = (CtcRecipe,)
