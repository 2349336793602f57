"""Train step for the JAX backend (stateless).

JAX threads all state through the step: trainable, non-trainable (batch-norm
statistics, spectral-norm vectors, random-seed state), optimizer and metric
variables. The forward passes run inside a ``keras.StatelessScope`` over all
model variables; the new values of the non-trainable ones are read back from
the scope and threaded from the autoencoder pass into the discriminator pass.
One optimizer updates both parameter groups: Adam is per-parameter, so this is
the same update as one Adam for each group.
"""

import collections
import contextlib
import json
import threading

import jax
import keras
import numpy as np

from ._compile_cache import Program, code_digest

#: Most compiled functions kept for reuse across models (least recently used
#: dropped first); each entry holds one model of that structure alive.
_CACHE_SIZE = 8
_SHARED = collections.OrderedDict()
_LOCK = threading.Lock()


_STATE_KEYS = ("seed", "sn_seed", "name",
               # initial loss weights: values of variables, not constants
               "lambda_recon", "lambda_adv", "lambda_contra", "lambda_cov")


def _strip_seeds(config, names=None):
    """``config`` without seeds and names; layer names elsewhere (a functional
    model's wiring) become the layer's index, so auto-numbered names
    (``dropout_3``) do not make equal structures differ."""
    names = names or {}
    if isinstance(config, dict):
        return {k: _strip_seeds(v, names) for k, v in config.items()
                if k not in _STATE_KEYS}
    if isinstance(config, (list, tuple)):
        return [_strip_seeds(v, names) for v in config]
    if isinstance(config, str) and config in names:
        return names[config]
    return config


def _variables_signature(variables):
    return [(tuple(v.shape), str(v.dtype), bool(v.trainable)) for v in variables]


def _code(model):
    """The Python functions a trace of ``model`` runs, as objects: a key that
    holds them sees a monkeypatched or redefined method as another structure
    (holding the objects, not their ``id``, rules out reuse of a freed id)."""
    from .. import losses

    layers = [model, *model._flatten_layers(include_self=False)]
    methods = ("call", "train_step", "autoencoder_losses", "_autoencoder_terms",
               "_discriminator_terms", "_prior_samples",
               "discriminator_losses", "_normalized_kernel")
    code = [getattr(type(layer), m, None) for layer in layers for m in methods]
    code += [getattr(losses, name) for name in losses.__all__]
    code += [train_step, _run]
    return tuple(code)


def structure_key(kind, model, extra=()):
    """A key that is equal for two models exactly when one traced function
    computes the same thing for both: same class and code, configuration
    (seeds, names and initial values aside: they live in the variables, which
    are arguments) and variables (shape, dtype, trainable, in order).

    Parameters
    ----------
    kind : str
        What the function computes (``"train"``, ``"predict"``).
    model : keras.Model
    extra : sequence, optional
        More JSON-serialisable values the key must include.

    Returns
    -------
    key : tuple
        Hashable.
    """
    layers = [model, *model._flatten_layers(include_self=False)]
    names = {layer.name: f"<layer {i}>" for i, layer in enumerate(layers)}
    config = _strip_seeds(model.get_config(), names)
    text = json.dumps(
        [kind, type(model).__module__, type(model).__qualname__, keras.__version__,
         keras.config.dtype_policy().name, config,
         _variables_signature(model.variables), list(extra)],
        sort_keys=True, default=str,
    )
    return text, _code(model)


def _disk_key(key):
    """A :func:`structure_key` as a string that is the same in every process
    (the code as a digest of its functions): a :class:`Program` key."""
    text, code = key
    return text + "\0" + code_digest(code)


def _shared(key, build):
    with _LOCK:
        fn = _SHARED.get(key)
        if fn is not None:
            _SHARED.move_to_end(key)
            return fn
    fn = build()
    with _LOCK:
        fn = _SHARED.setdefault(key, fn)
        _SHARED.move_to_end(key)
        while len(_SHARED) > _CACHE_SIZE:
            _SHARED.popitem(last=False)
    return fn


def jitted_train_step(model):
    """The model's train step as a jitted function shared by every model of
    the same structure and optimizer configuration.

    The step is stateless: all variables (weights, batch-norm statistics,
    spectral-norm vectors, seed states, optimizer slots, metric totals) come
    in as its ``state`` argument, so the function traced for the first model
    of a structure computes the step of any other model of that structure.
    Sharing it means XLA compiles the step once per process instead of once
    per fit (about 15 s on two cores), which is what a grid search or a
    cross-validation of many fits pays otherwise; the compiled step is also
    kept on disk for later processes (:mod:`._compile_cache`), found there by
    this key (so a later process loads it without tracing the step first).

    The state is not donated to the step (its buffers are not reused for the
    new state): Ctrl-C can land between the step's return and Keras storing
    the new state, and the state Keras then holds, and writes back to the
    variables, must still exist. Donating saved no measurable time (0.98-1.02
    of a step on two CPU cores; the state is 9.3k parameters and their slots).
    """
    optimizer = model.optimizer
    opt_config = _strip_seeds(optimizer.get_config())
    key = structure_key("train", model, [
        type(optimizer).__qualname__, opt_config,
        _variables_signature(optimizer.variables),
    ])
    return _shared(key, lambda: Program(model.train_step, fixed_argnums=(0,),
                                        key=lambda: _disk_key(key)))


def _run(model, fn, trainable_values, non_trainable_values):
    mapping = list(zip(model.trainable_variables, trainable_values))
    mapping += list(zip(model.non_trainable_variables, non_trainable_values))
    with keras.StatelessScope(state_mapping=mapping) as scope:
        out = fn()
    new_nt = []
    for v, old in zip(model.non_trainable_variables, non_trainable_values):
        new = scope.get_current_value(v)
        new_nt.append(old if new is None else new)
    return out, new_nt


def train_step(model, state, data):
    trainable, non_trainable, optimizer_vars, metrics_vars = state
    x, y = data[0], data[1]
    ids = {id(v): i for i, v in enumerate(model.trainable_variables)}
    ae_idx = [ids[id(v)] for v in model.autoencoder_variables]
    d_idx = [ids[id(v)] for v in model.discriminator_variables]

    def merged(ae_vals, d_vals):
        vals = list(trainable)
        for i, v in zip(ae_idx, ae_vals):
            vals[i] = v
        for i, v in zip(d_idx, d_vals):
            vals[i] = v
        return vals

    ae_vals = [trainable[i] for i in ae_idx]
    d_vals = [trainable[i] for i in d_idx]

    def ae_fn(ae_v):
        terms, nt = _run(
            model, lambda: model.autoencoder_losses(x, y), merged(ae_v, d_vals), non_trainable
        )
        return terms["loss"], (terms, nt)

    (_, (terms, non_trainable)), ae_grads = jax.value_and_grad(ae_fn, has_aux=True)(ae_vals)
    z = jax.lax.stop_gradient(terms["z"])

    def d_fn(d_v):
        loss, nt = _run(
            model, lambda: model.discriminator_losses(z), merged(ae_vals, d_v), non_trainable
        )
        return loss, nt

    (disc, non_trainable), d_grads = jax.value_and_grad(d_fn, has_aux=True)(d_vals)

    grads = [None] * len(trainable)
    for i, g in zip(ae_idx, ae_grads):
        grads[i] = g
    for i, g in zip(d_idx, d_grads):
        grads[i] = g
    grads = [g if g is not None else jax.numpy.zeros_like(t) for g, t in zip(grads, trainable)]
    trainable, optimizer_vars = model.optimizer.stateless_apply(
        optimizer_vars, grads, trainable
    )

    terms["disc_loss"] = disc
    logs, new_metrics_vars, start = {}, [], 0
    for name, tracker in model.trackers.items():
        n = len(tracker.variables)
        mv = tracker.stateless_update_state(metrics_vars[start : start + n], terms[name])
        logs[name] = tracker.stateless_result(mv)
        new_metrics_vars += list(mv)
        start += n
    return logs, (trainable, non_trainable, optimizer_vars, new_metrics_vars)


def predict_function(net):
    """``f(x) -> ndarray``: ``net`` in inference mode as one jitted call.

    The current weights are passed on every call (so the function follows
    training), and XLA compiles once per batch shape and network structure
    (the jitted function is shared by networks of the same structure, as in
    :func:`jitted_train_step`).
    """

    def build():
        def run(trainable, non_trainable, x):
            out, _ = net.stateless_call(trainable, non_trainable, x, training=False)
            return out

        return Program(run, fixed_argnums=(0, 1), key=lambda: _disk_key(key))

    key = structure_key("predict", net)
    run = _shared(key, build)

    def predict(x):
        return np.asarray(run([v.value for v in net.trainable_variables],
                              [v.value for v in net.non_trainable_variables], x))

    return predict


def cpu_threads():
    """No thread setting to scope on JAX (XLA sizes its own pool)."""
    return contextlib.nullcontext()
