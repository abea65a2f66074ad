"""Data with a known ground truth, numpy only. Used by both halves of memlab.

The vector generators (GMM, low-rank GMM, templates) are seedable and return a `Dataset`: train set, test
set and ground truth. The image sets of the IAR side (`load_image_set`) return an `ImageSet`: train and held-out images
with stable ids.
"""

from synthetic.base import Dataset, DataError
from synthetic.gmm import GMMTruth, make_gmm
from synthetic.images import ImageSet, load_image_set
from synthetic.lowrank import LowRankGMMTruth, make_lowrank_gmm
from synthetic.templates import TemplateTruth, load_templates, make_templates

__all__ = [
    "Dataset", "DataError", "GMMTruth", "LowRankGMMTruth", "TemplateTruth", "make_gmm", "make_lowrank_gmm",
    "make_templates", "load_templates",
    "ImageSet", "load_image_set",
]
