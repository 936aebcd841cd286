"""Merged models out: a merge recipe streamed tensor by tensor into a normal HF folder."""

from .merge_recipe import merge_recipe
from .recipe import Recipe, RecipeInput, load_recipe

__all__ = ["merge_recipe", "Recipe", "RecipeInput", "load_recipe"]
