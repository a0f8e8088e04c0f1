"""A saved model made ready for export, whoever saved it and however: each form a LeNet is found in read by a
loader of its own behind one ``load`` (loading), the result a Keras 3 model that answers as the file does;
the preprocessing it was trained on found on the test digits (preprocessing); wrapped so that every export
takes raw pixels (wrapping).

| module | its job |
|---|---|
| `loading.py` | the one ``load``: the form told apart, its loader called, the digit-classifier checks |
| `keras3.py` | `.keras` archives and HDF5 files written by Keras 3 (TensorFlow function activations mapped) |
| `keras2_h5.py` | whole-model HDF5 files written by Keras 2.0-2.x |
| `json_weights.py` | an architecture JSON beside a weights-only HDF5 file |
| `savedmodel.py` | SavedModel folders written by Keras 2 |
| `keras2.py` | Keras 2 (tf-keras) imported when needed, and a Keras 2 model rebuilt in Keras 3 |
| `configs.py` | a config read before loading: Lambda layers and the user's classes refused, tf functions mapped |
| `hdf5.py` | what an HDF5 file says of itself (Keras version, model config) |
| `preprocessing.py` | the input scaling found by scoring the test digits; no digit classifier refused |
| `wrapping.py` | the wrapped model, its self-check against the file, the manifest's facts |
| `base.py` | the ``Loaded`` and ``UserModel`` records and the digit-classifier checks |
"""

from .base import FORMS, UserModel
from .loading import MODEL_SUFFIXES, load
from .preprocessing import AUTO, INPUT_SCALES, Scores, choose, score
from .wrapping import for_export, wrap

load_user_model = load

__all__ = [
    "AUTO",
    "FORMS",
    "INPUT_SCALES",
    "MODEL_SUFFIXES",
    "Scores",
    "UserModel",
    "choose",
    "for_export",
    "load",
    "load_user_model",
    "score",
    "wrap",
]
