"""The networks: one registry of small builder functions (registry.py), the lab's four
networks (lab.py), the accuracy recipes (strided.py), the speedrun's networks (small.py), the
layers and schedules their saved files hold, and loading a saved model (saved.py).

Importing this package registers every network; it imports no Keras.
"""

from mnistlab.models import lab, small, strided  # noqa: F401  (each registers its networks)
from mnistlab.models.registry import REGISTRY, ModelSpec, create_model, get_spec, register

__all__ = ["REGISTRY", "ModelSpec", "create_model", "get_spec", "register"]
