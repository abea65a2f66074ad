"""Data with a known ground truth, numpy only. Used by both halves of memlab.

Every generator is seedable and returns a `Dataset`: train set, test set and ground truth.
"""

from synthetic.base import Dataset, DataError
from synthetic.gmm import GMMTruth, make_gmm
from synthetic.templates import TemplateTruth, load_templates, make_templates

__all__ = [
    "Dataset", "DataError", "GMMTruth", "TemplateTruth", "make_gmm", "make_templates", "load_templates",
]
