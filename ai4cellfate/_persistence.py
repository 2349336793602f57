"""Saving and loading fitted estimators: one ``.keras`` archive per model.

The archive is Keras' own format for the network plus ``ai4cellfate.json``
(the estimator's parameters, classes, image shape and history), so a saved
model explains itself and loads under any backend.

A model file is untrusted input. :func:`load` reads the two small JSON records
first and checks them against each other and against fixed limits
(:data:`LIMITS`) *before* Keras builds anything: a crafted ``config.json``
asking for a huge network is refused in milliseconds instead of filling the
memory. :func:`save` refuses an estimator whose parameters were changed with
``set_params`` after fitting in a way that no longer describes its network.
"""

from __future__ import annotations

import io
import json
import math
import numbers
import os
import tempfile
import zipfile

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted

from ._io import atomic_path
from ._version import __version__

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "LIMITS", "metadata", "check_saveable",
           "write_archive", "save", "load", "model_to_bytes", "model_from_bytes"]

FORMAT_NAME = "ai4cellfate-model"
FORMAT_VERSION = 1
_META_MEMBER = "ai4cellfate.json"
_CONFIG_MEMBER = "config.json"
_MODEL_CLASS = "AdversarialAutoencoder"
_REGISTERED_NAME = "ai4cellfate>AdversarialAutoencoder"

#: What :func:`load` accepts. The network grows with the image: filters double
#: per halving of the image side, so a 1024 x 1024 model has about 30 million
#: weights (120 MB) and a 4096 x 4096 one about 480 million (several GB to
#: build); larger images, more channels, latent dimensions or classes than
#: these are refused as not sane for this model.
LIMITS = {
    "image_side": 1024,        # pixels, height and width (at least 4)
    "channels": 64,
    "latent_dim": 1024,
    "n_classes": 1000,
    "build_batch": 65536,      # batch size recorded in Keras' build_config
    "config_bytes": 1 << 20,   # config.json
    "metadata_bytes": 64 << 20,  # ai4cellfate.json (holds the training history)
    "archive_bytes": 1 << 30,  # all members, uncompressed
}

#: Keys of ``ai4cellfate.json`` and the type each must have.
_META_TYPES = {
    "format": str,
    "format_version": int,
    "ai4cellfate_version": str,
    "keras_backend": str,
    "params": dict,
    "classes": list,
    "classes_dtype": str,
    "image_shape": list,
    "layout": str,
    "n_epochs": int,
    "stop_reason": str,
    "history": dict,
}
_LAYOUTS = ("hw", "hwc", "flat")

#: Entries of the network's Keras config (``config.json`` -> ``config``):
#: the base keys Keras writes for any model and ours, with their types.
_CONFIG_TYPES = {
    "name": str,
    "trainable": bool,
    "dtype": (str, dict, type(None)),
    "image_shape": list,
    "latent_dim": int,
    "n_classes": int,
    "temperature": numbers.Real,
    "noise_std": numbers.Real,
    "ssim_window": int,
    "ssim_form": str,
    "seed": int,
    "lambda_recon": numbers.Real,
    "lambda_adv": numbers.Real,
    "lambda_contra": numbers.Real,
    "lambda_cov": numbers.Real,
}
_CONFIG_OPTIONAL = ("name", "trainable", "dtype")
_TOP_KEYS = ("module", "class_name", "config", "registered_name", "build_config",
             "compile_config")

#: Estimator parameters that define the network, compared with its config.
_NETWORK_PARAMS = ("latent_dim", "temperature", "noise_std", "ssim_form", "ssim_window",
                   "lambda_recon", "lambda_adv", "lambda_contra", "lambda_cov")


def _is_int(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v):
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _type_ok(value, expected):
    if expected is int:
        return _is_int(value)
    if expected is numbers.Real:
        return _is_real(value) and math.isfinite(value)
    return isinstance(value, expected)


def _type_name(expected):
    names = {int: "an integer", str: "a string", dict: "an object", list: "a list",
             bool: "true or false", numbers.Real: "a finite number"}
    if isinstance(expected, tuple):
        return " or ".join(names.get(t, t.__name__) for t in expected)
    return names.get(expected, expected.__name__)


# --------------------------------------------------------------------------
# The record and the network: do they agree?
# --------------------------------------------------------------------------


def _same(a, b):
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    if _is_real(a) and _is_real(b):
        return float(a) == float(b)
    return a == b


def _network_mismatches(params, net, *, n_classes, image_shape):
    """``(name, parameter value, network value)`` for every disagreement.

    ``params`` are estimator parameters (``get_params()`` or the saved ones),
    ``net`` the network's Keras config (``model_.get_config()`` or the saved
    ``config.json`` entry), ``n_classes`` and ``image_shape`` what the
    estimator was fitted on. Parameters missing from ``params`` are not
    compared.
    """
    out = []
    for name in _NETWORK_PARAMS:
        if name in params and name in net and not _same(params[name], net[name]):
            out.append((name, params[name], net[name]))
    if "n_classes" in net and net["n_classes"] != n_classes:
        out.append(("number of classes", n_classes, net["n_classes"]))
    if "image_shape" in net and list(net["image_shape"]) != list(image_shape):
        out.append(("fitted image shape", tuple(image_shape), tuple(net["image_shape"])))
    shape = params.get("image_shape")
    if shape is not None:
        try:
            full = tuple(int(s) for s in shape)
        except (TypeError, ValueError):
            full = None
        if full is not None and len(full) == 2:
            full += (1,)
        if full != tuple(image_shape):
            out.append(("image_shape", shape, tuple(image_shape)))
    return out


def check_saveable(est):
    """Raise unless the fitted ``est`` can be saved truthfully.

    The parameters are validated as ``fit`` validates them (the same error),
    and those that define the network (``latent_dim``, ``temperature``,
    ``noise_std``, ``ssim_form``, the ``lambda_*`` weights, ``image_shape``)
    must still be the ones the network was built with: after
    ``set_params(latent_dim=8)`` on a model fitted with 2 the saved file
    would describe a network it does not hold.

    Parameters
    ----------
    est : CellFateAAE
        A fitted estimator.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        ``est`` is not fitted.
    ValueError, TypeError
        An invalid parameter, or one changed since ``fit``.
    """
    check_is_fitted(est, "model_")
    est._check_params()
    net = est.model_.get_config()
    bad = _network_mismatches(est.get_params(), net, n_classes=len(est.classes_),
                              image_shape=est.image_shape_)
    if bad:
        detail = "; ".join(f"{name} is {p!r} but the network was built with {n!r}"
                           for name, p, n in bad)
        raise ValueError(
            f"Cannot save: parameters were changed after fit ({detail}). Fit again with the "
            "new parameters, or set them back with set_params before saving."
        )


# --------------------------------------------------------------------------
# Saving
# --------------------------------------------------------------------------


def metadata(est):
    """The ``ai4cellfate.json`` record of a fitted estimator."""
    import keras

    # The parameters the model was fitted with (set_params after fit does not
    # change what the file says about how it was trained).
    params = dict(getattr(est, "_fit_params", None) or est.get_params())
    if not (params["random_state"] is None or isinstance(params["random_state"], int)):
        params["random_state"] = None
    if params["image_shape"] is not None:
        params["image_shape"] = list(params["image_shape"])
    if params["checkpoint_dir"] is not None:
        params["checkpoint_dir"] = os.fspath(params["checkpoint_dir"])
    classes = est.classes_
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "ai4cellfate_version": __version__,
        "keras_backend": keras.backend.backend(),
        "params": params,
        "classes": classes.tolist(),
        "classes_dtype": classes.dtype.str,
        "image_shape": list(est.image_shape_),
        "layout": est._layout,
        "n_epochs": int(est.n_epochs_),
        "stop_reason": est.stop_reason_,
        "best_epoch": getattr(est, "best_epoch_", None),
        "history": json.loads(est.history_.to_json(orient="split")),
    }


def _keras_archive(model):
    """The network as a ``.keras`` archive in memory (an ``io.BytesIO``).

    In memory on purpose: given a path, Keras may write the weights to a
    temporary file of its own beside it (when it thinks memory is short), a
    second temporary file beside ours that a killed run would leave behind.
    """
    buf = io.BytesIO()
    try:
        from keras.src.saving import saving_lib
    except ImportError:  # pragma: no cover - a Keras without the module
        saving_lib = None
    if saving_lib is not None and hasattr(saving_lib, "save_model"):
        saving_lib.save_model(model, buf)
    else:  # pragma: no cover
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.keras")
            model.save(path)
            with open(path, "rb") as fh:
                buf.write(fh.read())
    return buf


def write_archive(est, path):
    """Write the model file of the fitted ``est`` to ``path`` directly.

    For callers that manage their own temporary file (the command line
    writes the model and its history together); :func:`save` is this inside
    an atomic rename. Checks :func:`check_saveable` first.
    """
    check_saveable(est)
    buf = _keras_archive(est.model_)
    with zipfile.ZipFile(buf, "a") as zf:
        zf.writestr(_META_MEMBER, json.dumps(metadata(est)))
    with open(path, "wb") as fh:
        fh.write(buf.getbuffer())
        fh.flush()
        os.fsync(fh.fileno())


def save(est, path, *, overwrite=False):
    """Save the fitted estimator ``est`` to one ``.keras`` file.

    The file is a Keras archive of the network with this estimator's
    parameters, classes and history inside (``ai4cellfate.json``); it
    loads under any backend with :func:`ai4cellfate.load`. The file is
    written to one temporary name beside ``path`` and renamed, so a failure
    leaves no half-written file; temporary files of killed earlier saves to
    ``path`` are removed.

    Parameters
    ----------
    path : str or path-like
        Destination; must end with ``.keras``.
    overwrite : bool, default=False
        Replace an existing file.

    Raises
    ------
    ValueError, TypeError
        An invalid parameter, or a network-defining one changed with
        ``set_params`` since ``fit`` (see :func:`check_saveable`).
    """
    check_is_fitted(est, "model_")
    path = os.fspath(path)
    if not path.endswith(".keras"):
        raise ValueError(f"path must end with '.keras'; got {path!r}.")
    check_saveable(est)
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it.")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"The folder of path does not exist: {folder}")
    with atomic_path(path, suffix=".keras") as tmp:
        write_archive(est, tmp)


def model_to_bytes(model):
    return _keras_archive(model).getvalue()


def _load_keras(path):
    import keras

    from . import training  # noqa: F401  (registers the custom classes)

    return keras.saving.load_model(path, compile=False, safe_mode=True)


def model_from_bytes(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        with open(path, "wb") as fh:
            fh.write(data)
        return _load_keras(path)


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------


def _read_json_member(zf, name, limit, path):
    info = zf.getinfo(name)
    if info.file_size > limit:
        raise ValueError(
            f"{path} is not a valid ai4cellfate model file: its {name} has "
            f"{info.file_size} bytes (at most {limit} accepted)."
        )
    try:
        return json.loads(zf.read(name).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"{path} has an unreadable {name}: {exc}") from None


def _check_metadata(meta, path):
    """Validate ``ai4cellfate.json``; raise ValueError naming the problem."""
    not_ours = f"{path} is not an ai4cellfate model file"
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise ValueError(f"{not_ours} ({_META_MEMBER} does not name the format "
                         f"{FORMAT_NAME!r}); save models with CellFateAAE.save.")
    for key in ("format_version", "ai4cellfate_version"):
        if key in meta and not _type_ok(meta[key], _META_TYPES[key]):
            raise ValueError(
                f"{not_ours}: {key} in {_META_MEMBER} must be {_type_name(_META_TYPES[key])}, "
                f"got {meta[key]!r}."
            )
    version = meta.get("format_version")
    if version is not None and version > FORMAT_VERSION:
        raise ValueError(
            f"{path} was saved by ai4cellfate {meta.get('ai4cellfate_version')} in model "
            f"format {version}; this is ai4cellfate {__version__}, which reads format "
            f"{FORMAT_VERSION} and older. Upgrade ai4cellfate to load it."
        )
    missing = [k for k in _META_TYPES if k not in meta]
    if missing:
        raise ValueError(f"{not_ours}: its {_META_MEMBER} lacks {', '.join(missing)}.")
    for key, expected in _META_TYPES.items():
        if not _type_ok(meta[key], expected):
            raise ValueError(
                f"{not_ours}: {key} in {_META_MEMBER} must be {_type_name(expected)}, got "
                f"{meta[key]!r}."
            )
    if version < 1:
        raise ValueError(f"{not_ours}: format_version must be >= 1, got {version}.")
    _check_image_shape(meta["image_shape"], f"image_shape in {_META_MEMBER}", path)
    classes = meta["classes"]
    if not 2 <= len(classes) <= LIMITS["n_classes"]:
        raise ValueError(
            f"{not_ours}: it lists {len(classes)} classes (2 to {LIMITS['n_classes']} "
            "accepted)."
        )
    try:
        dtype = np.dtype(meta["classes_dtype"])
        if dtype.kind not in "biufUS":
            raise TypeError(f"dtype of kind {dtype.kind!r}")
        np.asarray(classes, dtype=dtype)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(
            f"{not_ours}: classes_dtype {meta['classes_dtype']!r} does not fit the classes "
            f"({exc})."
        ) from None
    if meta["layout"] not in _LAYOUTS:
        raise ValueError(f"{not_ours}: layout must be one of {list(_LAYOUTS)}, got "
                         f"{meta['layout']!r}.")
    if meta["n_epochs"] < 0:
        raise ValueError(f"{not_ours}: n_epochs must be >= 0, got {meta['n_epochs']}.")
    hist = meta["history"]
    if not (isinstance(hist.get("columns"), list) and isinstance(hist.get("data"), list)
            and all(isinstance(c, str) for c in hist["columns"])
            and all(isinstance(r, list) and len(r) == len(hist["columns"])
                    for r in hist["data"])):
        raise ValueError(f"{not_ours}: its history is not a table (columns and data rows).")
    from .estimator import CellFateAAE

    known = CellFateAAE().get_params()
    unknown = sorted(str(k) for k in meta["params"] if k not in known)
    if unknown:
        raise ValueError(f"{not_ours}: unknown parameters {', '.join(unknown)}.")
    latent = meta["params"].get("latent_dim")
    if latent is not None and not (_is_int(latent) and 1 <= latent <= LIMITS["latent_dim"]):
        raise ValueError(
            f"{not_ours}: latent_dim must be an integer from 1 to {LIMITS['latent_dim']}, "
            f"got {latent!r}."
        )
    # The parameters as fit would validate them (the folder of the checkpoint
    # belongs to the machine that saved the model: not checked here).
    params = dict(meta["params"], checkpoint_dir=None)
    if isinstance(params.get("image_shape"), list):
        params["image_shape"] = tuple(params["image_shape"])
    try:
        CellFateAAE(**params)._check_params()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{not_ours}: invalid parameters in {_META_MEMBER}: {exc}") from None


def _check_image_shape(shape, what, path):
    side, channels = LIMITS["image_side"], LIMITS["channels"]
    if not (len(shape) == 3 and all(_is_int(s) for s in shape)
            and all(4 <= s <= side for s in shape[:2]) and 1 <= shape[2] <= channels):
        raise ValueError(
            f"{path} is not a valid ai4cellfate model file: {what} must be [height, width, "
            f"channels] with sides from 4 to {side} pixels and 1 to {channels} channels, got "
            f"{shape!r}."
        )


def _check_config(config, meta, path):
    """Validate the Keras ``config.json`` of the network against the metadata."""
    bad = f"{path} is not a valid ai4cellfate model file"
    if not isinstance(config, dict):
        raise ValueError(f"{bad}: {_CONFIG_MEMBER} is not an object.")
    if (config.get("registered_name") != _REGISTERED_NAME
            or config.get("class_name") != _MODEL_CLASS):
        raise ValueError(
            f"{bad}: its network is {config.get('registered_name') or config.get('class_name')!r}"
            f", not ai4cellfate's {_REGISTERED_NAME!r}."
        )
    extra = sorted(str(k) for k in config if k not in _TOP_KEYS)
    if extra:
        raise ValueError(f"{bad}: unexpected entries in {_CONFIG_MEMBER}: {', '.join(extra)}.")
    net = config.get("config")
    if not isinstance(net, dict):
        raise ValueError(f"{bad}: {_CONFIG_MEMBER} holds no network configuration.")
    extra = sorted(str(k) for k in net if k not in _CONFIG_TYPES)
    if extra:
        raise ValueError(
            f"{bad}: unexpected network settings in {_CONFIG_MEMBER}: {', '.join(extra)}."
        )
    for key, expected in _CONFIG_TYPES.items():
        if key not in net:
            if key in _CONFIG_OPTIONAL:
                continue
            raise ValueError(f"{bad}: {_CONFIG_MEMBER} lacks the network setting {key}.")
        if not _type_ok(net[key], expected):
            raise ValueError(
                f"{bad}: {key} in {_CONFIG_MEMBER} must be {_type_name(expected)}, got "
                f"{net[key]!r}."
            )
    _check_image_shape(net["image_shape"], f"image_shape in {_CONFIG_MEMBER}", path)
    ranges = {"latent_dim": (1, LIMITS["latent_dim"]),
              "n_classes": (2, LIMITS["n_classes"]),
              "ssim_window": (1, LIMITS["image_side"])}
    for key, (lo, hi) in ranges.items():
        if not lo <= net[key] <= hi:
            raise ValueError(f"{bad}: {key} in {_CONFIG_MEMBER} must be from {lo} to {hi}, "
                             f"got {net[key]}.")
    build = config.get("build_config")
    if build is not None:
        shape = build.get("input_shape") if isinstance(build, dict) else None
        ok = (isinstance(build, dict) and set(build) == {"input_shape"}
              and isinstance(shape, list) and len(shape) == 4
              and (shape[0] is None or (_is_int(shape[0])
                                        and 1 <= shape[0] <= LIMITS["build_batch"]))
              and list(shape[1:]) == list(net["image_shape"]))
        if not ok:
            raise ValueError(
                f"{bad}: build_config in {_CONFIG_MEMBER} must be the input shape "
                f"[batch, *{net['image_shape']}] (batch at most {LIMITS['build_batch']}), "
                f"got {build!r}."
            )
    mismatches = _network_mismatches(meta["params"], net, n_classes=len(meta["classes"]),
                                     image_shape=meta["image_shape"])
    if mismatches:
        detail = "; ".join(f"{name} {p!r} in {_META_MEMBER} but {n!r} in {_CONFIG_MEMBER}"
                           for name, p, n in mismatches)
        raise ValueError(f"{bad}: its records disagree ({detail}).")


def _inspect(path):
    """Read and check the archive's records without building anything; return the metadata."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            total = sum(i.file_size for i in infos)
            if total > LIMITS["archive_bytes"]:
                raise ValueError(
                    f"{path} is not a valid ai4cellfate model file: it unpacks to {total} "
                    f"bytes (at most {LIMITS['archive_bytes']} accepted)."
                )
            names = {i.filename for i in infos}
            if _META_MEMBER not in names:
                raise ValueError(
                    f"{path} is not an ai4cellfate model file (a Keras archive without "
                    f"{_META_MEMBER}); save models with CellFateAAE.save."
                )
            meta = _read_json_member(zf, _META_MEMBER, LIMITS["metadata_bytes"], path)
            _check_metadata(meta, path)
            if _CONFIG_MEMBER not in names:
                raise ValueError(f"{path} is not a valid ai4cellfate model file: it has no "
                                 f"{_CONFIG_MEMBER} (the network's Keras configuration).")
            config = _read_json_member(zf, _CONFIG_MEMBER, LIMITS["config_bytes"], path)
            _check_config(config, meta, path)
            bad = zf.testzip()
            if bad is not None:
                raise ValueError(f"{path} is corrupted: member {bad} fails its checksum.")
    except (zipfile.BadZipFile, EOFError, OSError, NotImplementedError) as exc:
        raise ValueError(
            f"{path} is not a readable ai4cellfate model file (truncated, corrupted or "
            f"another format): {exc}"
        ) from None
    return meta


def load(path):
    """Load a model saved with :meth:`CellFateAAE.save`, under any backend.

    Only this package's own format is read, with Keras' safe mode on (no
    arbitrary code is executed). Before Keras builds the network, the file's
    records are checked against each other and against
    :data:`ai4cellfate._persistence.LIMITS` (images up to 1024 x 1024 pixels
    and 64 channels, up to 1024 latent dimensions and 1000 classes), so a
    crafted file cannot make loading allocate a huge network. Pickled
    estimators, by contrast, must only be unpickled from trusted sources.

    Parameters
    ----------
    path : str or path-like
        A ``.keras`` file written by :meth:`CellFateAAE.save`.

    Returns
    -------
    model : CellFateAAE
        The fitted estimator.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        The file is not a model saved by ai4cellfate (a plain Keras file,
        records missing or of the wrong type, sizes out of range, records that
        disagree), is truncated or corrupted, or was written by a newer,
        incompatible version.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such model file: {path}")
    meta = _inspect(path)
    try:
        model = _load_keras(path)
    except Exception as exc:
        raise ValueError(f"{path} could not be loaded as a Keras model: {exc}") from None
    params = dict(meta["params"])
    if params.get("image_shape") is not None:
        params["image_shape"] = tuple(params["image_shape"])
    from .estimator import CellFateAAE

    est = CellFateAAE(**params)
    est.model_ = model
    est.classes_ = np.asarray(meta["classes"], dtype=np.dtype(meta["classes_dtype"]))
    est.image_shape_ = tuple(meta["image_shape"])
    est.n_features_in_ = int(np.prod(est.image_shape_))
    est._layout = meta["layout"]
    est.n_epochs_ = meta["n_epochs"]
    est.stop_reason_ = meta["stop_reason"]
    best = meta.get("best_epoch")  # absent from files of ai4cellfate 0.1
    est.best_epoch_ = best if isinstance(best, int) and not isinstance(best, bool) else None
    est.resumed_from_epoch_ = None
    hist = meta["history"]
    est.history_ = pd.DataFrame(hist["data"], columns=hist["columns"])
    if "criteria_met" in est.history_:
        est.history_["criteria_met"] = est.history_["criteria_met"].astype("boolean")
    return est
