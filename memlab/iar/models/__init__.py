"""The three class-conditional IAR models (diffusers ModelMixin + ConfigMixin, IARModel interface)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # memlab never loads anything from a hub

from memlab.iar.models.masked import MaskedTokenModel  # noqa: E402
from memlab.iar.models.next_scale import NextScaleTransformer  # noqa: E402
from memlab.iar.models.raster import RasterTransformer  # noqa: E402

MODEL_CLASSES = {"next-scale": NextScaleTransformer, "raster": RasterTransformer, "masked": MaskedTokenModel}

__all__ = ["MODEL_CLASSES", "MaskedTokenModel", "NextScaleTransformer", "RasterTransformer"]
